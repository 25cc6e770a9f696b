"""Refuse the NUL character (U+0000) anywhere in a request, before a route sees it.

PostgreSQL cannot store U+0000 in text or jsonb (the driver raises and the request answered
500) while SQLite stores it, so the two backends answered the same request differently, and
no real name, id or note holds a NUL. A validator per field would have to sit on every text
field, every free-form attribute map, every path and query parameter of four services and on
each one added later; this one guard covers them all and answers 422 on every backend alike.

It looks at:

- the path (percent-decoded) and the query string (``%00`` or a raw NUL), naming the parameter;
- JSON bodies (``application/json``, ``application/*+json``, or no content type) as they
  stream: the escape ``\\u0000`` (not ``\\\\u0000``, an escaped backslash and text) and any raw
  NUL byte. A raw NUL is never valid UTF-8 JSON; refusing it also refuses UTF-16/32 bodies,
  which RFC 8259 rules out between systems and which would otherwise hide the escape.

Bodies are not buffered: chunks go to the app as they arrive and the scanner keeps only the
few bytes an escape split across two chunks needs. On a NUL the app is told the client is gone
(``http.disconnect``), so it reads no more; its answer is dropped and the 422 sent instead. The
chunk with the NUL never reaches it. Up to `NAMING_LIMIT` bytes are kept to name the field.

Other bodies (CSV and NDJSON imports, multipart uploads) are left to the parser that reads
them: a bad row there belongs in the import's report, not in a refusal of the whole file.
"""

from __future__ import annotations

import json
from typing import Final
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_contracts._nul import NUL_MESSAGE, nul_location
from crm_shared._problems import PROBLEM_CONTENT_TYPE
from crm_shared._request_body import fixed_body_length
from crm_shared.errors import UnprocessableContent

NAMING_LIMIT: Final = 256 * 1024
"""A JSON body up to this size is parsed once refused, to name the field holding the NUL."""

_NOT_UTF8_MESSAGE: Final = "a JSON body must be UTF-8 text (RFC 8259), without NUL bytes"
_ESCAPE: Final = b"u0000"  # after an odd run of backslashes: the JSON escape of U+0000
_BACKSLASH: Final = 0x5C


class JsonNulScanner:
    """Finds U+0000 in JSON text fed chunk by chunk: a raw NUL byte or the escape ``\\u0000``.

    An escape is a backslash that is not itself escaped, so ``u0000`` means NUL only after an
    odd run of backslashes. The run and the escape may be split across chunks anywhere.
    """

    def __init__(self) -> None:
        self._tail = b""  # the last bytes fed, where an escape may have begun
        self._run_before_tail = 0  # backslashes right before the tail
        self.saw_nul_byte = False  # a raw NUL, not the escape: the body is not UTF-8 JSON

    def feed(self, chunk: bytes) -> bool:
        """Scan the next chunk; True when the text fed so far holds a NUL."""
        if b"\x00" in chunk:
            self.saw_nul_byte = True
            return True
        data = self._tail + chunk
        found = data.find(_ESCAPE)
        while found != -1:
            if self._backslashes_before(data, found) % 2 == 1:
                return True
            found = data.find(_ESCAPE, found + 1)
        cut = max(0, len(data) - (len(_ESCAPE) - 1))
        self._run_before_tail = self._backslashes_before(data, cut)
        self._tail = data[cut:]
        return False

    def _backslashes_before(self, data: bytes, end: int) -> int:
        # Each run is walked once per escape after it, so the scan stays linear in the body.
        start = end
        while start > 0 and data[start - 1] == _BACKSLASH:
            start -= 1
        run = end - start
        return run + self._run_before_tail if start == 0 else run


class NulCharacterGuard:
    """ASGI middleware answering 422 problem+json to any request holding U+0000."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            await _refuse(scope, receive, send, "path", "path")
            return
        parameter = _query_parameter_with_nul(scope.get("query_string", b""))
        if parameter is not None:
            await _refuse(scope, receive, send, parameter, "query")
            return
        if fixed_body_length(scope) == 0 or not _carries_json(scope):
            await self._app(scope, receive, send)
            return
        await _GuardedJsonRequest(self._app, scope, receive, send).run()


class _GuardedJsonRequest:
    """One request with a JSON body, scanned as the app reads it."""

    def __init__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        self._app, self._scope, self._receive, self._send = app, scope, receive, send
        self._scanner = JsonNulScanner()
        self._kept: list[bytes] | None = []  # the body so far, while small enough to name a field
        self._kept_size = 0
        self._refused: tuple[str, str] | None = None  # the field at fault, and why
        self._app_answered = False

    async def run(self) -> None:
        await self._app(self._scope, self._receive_scanned, self._send_unless_refused)
        if self._refused is not None and not self._app_answered:
            field, message = self._refused
            await _refuse(self._scope, self._receive, self._send, field, "body", message)

    async def _receive_scanned(self) -> Message:
        if self._refused is not None:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        chunk: bytes = message.get("body", b"")
        self._keep(chunk)
        if self._scanner.feed(chunk):
            self._refused = await self._field_with_nul(message.get("more_body", False))
            return {"type": "http.disconnect"}
        return message

    async def _send_unless_refused(self, message: Message) -> None:
        if self._refused is not None and not self._app_answered:
            return  # the app's answer to the cut-off body; the 422 follows when it returns
        if message["type"] == "http.response.start":
            self._app_answered = True
        await self._send(message)

    def _keep(self, chunk: bytes) -> None:
        if self._kept is not None:
            self._kept.append(chunk)
            self._kept_size += len(chunk)
            if self._kept_size > NAMING_LIMIT:
                self._kept = None

    async def _field_with_nul(self, more_body: bool) -> tuple[str, str]:
        """Read the rest of a small body and name the field holding the NUL, and why."""
        while more_body and self._kept is not None:
            message = await self._receive()
            if message["type"] != "http.request":
                break
            self._keep(message.get("body", b""))
            more_body = message.get("more_body", False)
        location = None
        if self._kept is not None and not more_body:
            try:
                location = nul_location(json.loads(b"".join(self._kept)))
            except (ValueError, RecursionError):
                location = None
        if location:
            return ".".join(location), NUL_MESSAGE
        if self._scanner.saw_nul_byte:
            return "body", _NOT_UTF8_MESSAGE
        return "body", NUL_MESSAGE


def _query_parameter_with_nul(query_string: bytes) -> str | None:
    if b"%00" not in query_string and b"\x00" not in query_string:
        return None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name:
            return "query"
        if "\x00" in value:
            return name
    return None  # no NUL once decoded


def _carries_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media_type: str = value.decode("latin-1").split(";", 1)[0].strip().lower()
            return media_type == "application/json" or (
                media_type.startswith("application/") and media_type.endswith("+json")
            )
    return True  # no content type: a JSON route may still try to read it


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    field: str,
    where: str,
    message: str = NUL_MESSAGE,
) -> None:
    problem = UnprocessableContent(
        f"{field}: {message}", errors=[{"field": field, "message": message, "in": where}]
    )
    # The instance is the path as requested, with the NUL left percent-encoded.
    instance = scope["path"].replace("\x00", "%00")
    response = JSONResponse(
        problem.body(instance=instance), status_code=422, media_type=PROBLEM_CONTENT_TYPE
    )
    await response(scope, receive, send)
