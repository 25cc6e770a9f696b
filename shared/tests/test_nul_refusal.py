"""U+0000 is refused everywhere alike: in requests at the edge, and in events on decoding."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from pydantic import BaseModel

from crm_contracts import (
    CustomerCreated,
    CustomerSnapshot,
    InvalidEvent,
    build_event,
    decode_event,
    encode_event,
)
from crm_shared import ReadAccess, Scope, ServiceMetrics, ServiceSettings, create_service_app
from crm_shared._auth import generate_api_key
from crm_shared._nul_guard import JsonNulScanner

# Each body with whether it holds U+0000 once parsed.
BODIES = [
    (rb'{"name": "a\u0000b"}', True),
    (rb'{"name": "a\\u0000b"}', False),  # an escaped backslash, then the text "u0000"
    (rb'{"name": "a\\\u0000b"}', True),  # an escaped backslash, then the escape
    (rb'{"name": "a\\\\u0000b"}', False),
    (rb'{"a\u0000": 1}', True),
    (rb'{"tags": ["x", "\u0000"]}', True),
    (rb'{"name": "u0000 \u0030"}', False),
    (b'{"name": "\\u00000"}', True),
    (b'{"name": "caf\xc3\xa9"}', False),
]


def holds_a_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_a_nul(key) or holds_a_nul(item) for key, item in value.items())
    return isinstance(value, list) and any(holds_a_nul(item) for item in value)


@pytest.mark.parametrize(("body", "holds_nul"), BODIES)
def test_the_scanner_finds_a_nul_escape_however_the_body_is_cut(
    body: bytes, holds_nul: bool
) -> None:
    assert holds_a_nul(json.loads(body)) is holds_nul
    for cut in range(len(body) + 1):
        scanner = JsonNulScanner()
        assert (scanner.feed(body[:cut]) | scanner.feed(body[cut:])) is holds_nul, cut
    byte_by_byte = JsonNulScanner()
    assert any(byte_by_byte.feed(body[i : i + 1]) for i in range(len(body))) is holds_nul


def test_a_backslash_run_split_over_many_chunks_keeps_its_parity() -> None:
    body = b'{"x": "' + b"\\" * 9 + b'u0000"}'  # four escaped backslashes, then the escape
    scanner = JsonNulScanner()
    assert any(scanner.feed(body[i : i + 1]) for i in range(len(body)))
    body = b'{"x": "' + b"\\" * 10 + b'u0000"}'  # five escaped backslashes, then text
    scanner = JsonNulScanner()
    assert not any(scanner.feed(body[i : i + 1]) for i in range(len(body)))


def test_a_raw_nul_byte_is_refused_so_utf16_cannot_hide_the_escape() -> None:
    assert JsonNulScanner().feed('{"name": "\\u0000"}'.encode("utf-16-le"))
    assert JsonNulScanner().feed(b'{"name": "a"}\x00')


class Thing(BaseModel):
    name: str
    tags: list[str] = []
    attributes: dict[str, Any] = {}


def an_app(seen: list[Thing]) -> tuple[FastAPI, str]:
    key, record = generate_api_key("reader", [Scope.READ])
    settings = ServiceSettings(environment="test", api_keys=[record], kafka_enabled=False)
    app = create_service_app(
        settings=settings,
        metrics=ServiceMetrics(),
        title="t",
        description="t",
        version="1",
        lifespan=None,  # type: ignore[arg-type]
    )

    @app.get("/things/{thing_id}")
    async def read(thing_id: str, _: ReadAccess, name: str | None = None) -> dict[str, Any]:
        return {"id": thing_id, "name": name}

    @app.post("/things")
    async def create(thing: Thing, _: ReadAccess) -> Thing:
        seen.append(thing)
        return thing

    @app.post("/upload")
    async def upload(request: Request, _: ReadAccess) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app, key


async def chunks_of(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.parametrize(
    ("method", "url", "content", "field"),
    [
        ("GET", "/things/a%00b", None, "path"),
        ("GET", "/things/a?name=x%00y", None, "name"),
        ("GET", "/things/a?other=1&name=%00", None, "name"),
        ("POST", "/things", b'{"name": "a\\u0000"}', "name"),
        ("POST", "/things", b'{"name": "a", "tags": ["b", "\\u0000"]}', "tags.1"),
        ("POST", "/things", b'{"name": "a", "attributes": {"n\\u0000": 1}}', "attributes"),
        ("POST", "/things", '{"name": "\\u0000"}'.encode("utf-16"), "name"),
        ("POST", "/things", '{"name": "a"}'.encode("utf-16"), "body"),  # not UTF-8: NUL bytes
        ("POST", "/things", b'{"name": "' + b"x" * 100_000 + b'\\u0000"}', "name"),
    ],
)
async def test_a_request_holding_nul_is_a_422_naming_where(
    method: str, url: str, content: bytes | None, field: str
) -> None:
    seen: list[Thing] = []
    app, key = an_app(seen)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {"X-API-Key": key, "content-type": "application/json", "X-Request-ID": "r1"}
        body = None if content is None else chunks_of(content, 7)  # escapes split across chunks
        response = await client.request(method, url, content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "r1"
    problem = response.json()
    assert problem["errors"][0]["field"] == field
    assert "NUL" in problem["detail"]
    assert seen == []  # the route never ran


async def test_text_that_only_looks_like_a_nul_passes_and_other_bodies_are_not_scanned() -> None:
    seen: list[Thing] = []
    app, key = an_app(seen)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {"X-API-Key": key}
        literal = await client.post(
            "/things",
            content=chunks_of(rb'{"name": "C:\\u0000 %00"}', 3),
            headers={**headers, "content-type": "application/json"},
        )
        assert literal.status_code == 200, literal.text
        assert literal.json()["name"] == "C:\\u0000 %00"
        escaped_percent = await client.get("/things/a", params={"name": "%00"}, headers=headers)
        assert escaped_percent.json()["name"] == "%00"  # sent as %2500
        upload = await client.post(
            "/upload",
            files={"file": ("rows.csv", b"email\nx\x00y@example.com\n", "text/csv")},
            headers=headers,
        )
        assert upload.status_code == 200, upload.text  # multipart is its parser's business
    assert [thing.name for thing in seen] == ["C:\\u0000 %00"]


def an_event_json() -> dict[str, Any]:
    at = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    snapshot = CustomerSnapshot(customer_id="c-1", first_name="Ada", created_at=at, updated_at=at)
    event = build_event(CustomerCreated(customer=snapshot), source="/test", time=at)
    document: dict[str, Any] = json.loads(encode_event(event))
    return document


def test_an_event_holding_nul_in_any_string_is_invalid_and_names_the_field() -> None:
    document = an_event_json()
    document["data"]["customer"]["first_name"] = "A\x00da"
    with pytest.raises(InvalidEvent) as refused:
        decode_event(json.dumps(document).encode())
    assert refused.value.field == "data.customer.first_name"
    assert "NUL" in refused.value.reason
    document = an_event_json()
    document["data"]["customer"]["attributes"] = {"note\x00": "x"}
    with pytest.raises(InvalidEvent) as refused:
        decode_event(json.dumps(document))
    assert refused.value.field == "data.customer.attributes"


def test_an_event_with_an_escaped_backslash_before_u0000_is_valid() -> None:
    document = an_event_json()
    document["data"]["customer"]["first_name"] = "\\u0000"
    event = decode_event(json.dumps(document).encode())
    assert isinstance(event.data, CustomerCreated)
    assert event.data.customer.first_name == "\\u0000"
