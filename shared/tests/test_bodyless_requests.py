"""A request without a body passes the body-watching middlewares untouched; others are watched.

The NUL guard and the body limit wrap ``receive`` and ``send`` to scan or count a body. A GET
without one (most reads, the 360 among them) has nothing to scan or count, so the app gets the
server's own callables; a body the framing does not fix (chunked, HTTP/2) is still watched.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from crm_shared._body_limit import RequestBodyLimitMiddleware, RequestBodyLimits
from crm_shared._nul_guard import NulCharacterGuard
from crm_shared._request_body import fixed_body_length

LIMIT = 1024


class RecordingApp:
    """An ASGI app that reads the whole body, answers 200 and keeps what it was handed."""

    def __init__(self) -> None:
        self.receive: Receive | None = None
        self.send: Send | None = None
        self.body = b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.receive, self.send = receive, send
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            self.body += message.get("body", b"")
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def http_scope(
    headers: list[tuple[bytes, bytes]], *, method: str = "GET", http_version: str = "1.1"
) -> Scope:
    return {
        "type": "http",
        "http_version": http_version,
        "method": method,
        "path": "/v1/customers/c-1/360",
        "query_string": b"",
        "headers": [(b"host", b"service"), *headers],
    }


class Exchange:
    """The server's side of one request: the body in chunks, the messages sent back."""

    def __init__(self, *chunks: bytes) -> None:
        self._chunks = list(chunks) or [b""]
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        if not self._chunks:
            return {"type": "http.disconnect"}
        chunk = self._chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self._chunks)}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        status: int = self.sent[0]["status"]
        return status

    def body_json(self) -> Any:
        return json.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


def guarded(app: RecordingApp) -> Any:
    return NulCharacterGuard(RequestBodyLimitMiddleware(app, RequestBodyLimits(LIMIT)))


@pytest.mark.parametrize(
    ("headers", "http_version", "expected"),
    [
        ([], "1.1", 0),
        ([(b"content-length", b"0")], "1.1", 0),
        ([(b"content-length", b"12")], "1.0", 12),
        ([(b"transfer-encoding", b"chunked")], "1.1", None),
        ([(b"content-length", b"3"), (b"transfer-encoding", b"chunked")], "1.1", None),
        ([(b"content-length", b"3"), (b"content-length", b"3")], "1.1", None),
        ([(b"content-length", b"-3")], "1.1", None),
        ([], "2", None),
    ],
)
def test_only_http1_framing_fixes_the_body_length(
    headers: list[tuple[bytes, bytes]], http_version: str, expected: int | None
) -> None:
    assert fixed_body_length(http_scope(headers, http_version=http_version)) == expected


async def test_a_get_without_a_body_reaches_the_app_with_the_servers_own_callables() -> None:
    app = RecordingApp()
    exchange = Exchange()

    await guarded(app)(http_scope([]), exchange.receive, exchange.send)

    assert exchange.status == 200
    assert app.receive == exchange.receive
    assert app.send == exchange.send


async def test_a_get_carrying_a_json_body_is_still_scanned_for_nul() -> None:
    app = RecordingApp()
    body = b'{"name": "A\\u0000da"}'
    exchange = Exchange(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    await guarded(app)(http_scope(headers), exchange.receive, exchange.send)

    assert exchange.status == 422
    assert exchange.body_json()["errors"][0]["field"] == "name"


async def test_a_chunked_body_without_a_content_type_is_scanned_and_counted() -> None:
    app = RecordingApp()
    nul = Exchange(b'{"note": ', b'"\\u0000"}')
    await guarded(app)(
        http_scope([(b"transfer-encoding", b"chunked")], method="POST"), nul.receive, nul.send
    )
    assert nul.status == 422

    large = Exchange(b" " * LIMIT, b" ")
    await guarded(RecordingApp())(
        http_scope([(b"transfer-encoding", b"chunked")], method="POST"), large.receive, large.send
    )
    assert large.status == 413


async def test_a_declared_body_within_the_limit_is_read_whole() -> None:
    app = RecordingApp()
    body = b'{"name": "Ada"}'
    exchange = Exchange(body[:5], body[5:])
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    await guarded(app)(http_scope(headers, method="POST"), exchange.receive, exchange.send)

    assert exchange.status == 200
    assert app.body == body


async def test_a_declared_body_over_the_limit_is_refused_unread() -> None:
    app = RecordingApp()
    exchange = Exchange(b" " * (LIMIT + 1))
    headers = [(b"content-length", b"%d" % (LIMIT + 1))]

    await guarded(app)(http_scope(headers, method="POST"), exchange.receive, exchange.send)

    assert exchange.status == 413
    assert app.receive is None
