"""Logs are JSON with request and event ids and no contact details; errors are problem+json."""

from __future__ import annotations

import contextlib
import json
import logging
import logging.config
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn.config
from fastapi import FastAPI

from crm_shared import (
    NotFound,
    ReadAccess,
    Scope,
    ServiceMetrics,
    ServiceSettings,
    create_service_app,
    event_id_var,
    generate_api_key,
    request_id_var,
)
from crm_shared._logging import JsonFormatter, RepeatLimiter, redact, redact_request_target


def a_record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "test"})
    record.__dict__.update(extra)
    return record


def test_log_lines_carry_ids_and_mask_contact_details() -> None:
    formatter = JsonFormatter("profile-service")
    request_token = request_id_var.set("req-1")
    event_token = event_id_var.set("evt-1")
    try:
        line = formatter.format(
            a_record("failed for ada@example.com at +49 151 1234567", reason="bob@example.com")
        )
    finally:
        request_id_var.reset(request_token)
        event_id_var.reset(event_token)
    document = json.loads(line)
    assert document["request_id"] == "req-1"
    assert document["event_id"] == "evt-1"
    assert document["service"] == "profile-service"
    assert "example.com" not in line
    assert "1234567" not in line
    assert document["message"] == "failed for [email] at [phone]"
    assert document["reason"] == "[email]"


@pytest.mark.parametrize(
    "kept",
    [
        "Connection at 127.0.0.1:44331 closed",
        "retry at 2026-11-24 10:50:29.968155+00:00",
        "due 2026-11-24T21:00:00Z",
        "batch of 1234567 rows",
    ],
)
def test_addresses_times_and_counts_are_not_masked_as_phone_numbers(kept: str) -> None:
    assert redact(kept) == kept


@pytest.mark.parametrize(
    "number", ["+49 151 1234567", "(030) 1234-5678", "+1.555.123.4567", "015112345678"]
)
def test_phone_numbers_are_masked(number: str) -> None:
    assert redact(f"call {number} now") == "call [phone] now"


def test_a_repeated_client_library_error_is_written_once_per_window() -> None:
    now = [0.0]
    limiter = RepeatLimiter(("aiokafka",), window_seconds=10.0, clock=lambda: now[0])

    def error(name: str = "aiokafka.conn") -> logging.LogRecord:
        return logging.LogRecord(name, logging.ERROR, "x", 1, "Unable connect to %s", ("a",), None)

    passed = []
    for second in range(25):  # an outage: one error a second
        now[0] = float(second)
        record = error()
        if limiter.filter(record):
            passed.append((second, getattr(record, "repeated", 0)))
    assert passed == [(0, 0), (10, 9), (20, 9)]
    assert limiter.filter(error("crm.outbox"))  # our own loggers are never held back
    assert limiter.filter(error("crm.outbox"))


def an_app() -> tuple[FastAPI, str]:
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
    async def thing(thing_id: int, _: ReadAccess) -> dict[str, int]:
        if thing_id == 0:
            raise NotFound("No thing 0.")
        if thing_id == 13:
            raise RuntimeError("unlucky")
        return {"id": thing_id}

    return app, key


async def test_errors_of_every_kind_are_problem_json() -> None:
    app, key = an_app()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {"X-API-Key": key, "X-Request-ID": "abc"}
        ok = await client.get("/things/1", headers=headers)
        assert ok.json() == {"id": 1}
        assert ok.headers["x-request-id"] == "abc"
        for path, status, field in [
            ("/things/0", 404, None),
            ("/things/x", 422, "thing_id"),
            ("/nowhere", 404, None),
            ("/things/13", 500, None),
        ]:
            response = await client.get(path, headers=headers)
            assert response.status_code == status, path
            assert response.headers["content-type"] == "application/problem+json"
            problem = response.json()
            assert problem["status"] == status
            assert {"type", "title", "detail"} <= problem.keys()
            if field:
                assert problem["errors"][0]["field"] == field
        assert "unlucky" not in (await client.get("/things/13", headers=headers)).text


TOKEN = "eyJjIjoiMDE5MzhhIiwicCI6Im0ifQ.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg"


def test_the_development_access_log_shows_no_query_values_tokens_or_contact_details(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The access log as uvicorn configures and writes it (`make run` keeps it on), after a
    # service app has configured logging.
    logging.config.dictConfig(uvicorn.config.LOGGING_CONFIG)
    access = logging.getLogger("uvicorn.access")
    try:
        create_service_app(
            settings=ServiceSettings(service_name="test-service"),
            metrics=ServiceMetrics(),
            title="t",
            description="d",
            version="1",
            lifespan=_no_lifespan,
        )
        for target in (
            f"/v1/customers?email=ada%40example.com&token={TOKEN}&limit=5",
            f"/v1/unsubscribe/{TOKEN}?email=ada@example.com",
            "/v1/customers/ada%40example.com",
            "/v1/customers?phone=%2B4915112345678",
            "/v1/search?ada@example.com",
        ):
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", target, "1.1", 200)
    finally:
        for name in ("uvicorn", "uvicorn.access"):  # their streams are this test's capture
            logging.getLogger(name).handlers.clear()

    written = capsys.readouterr().out
    assert written.count('"GET /v1/') == 5, written
    for secret in ("ada", "example.com", TOKEN, "4915112345678", "%40"):
        assert secret not in written, written
    assert '"GET /v1/customers?email=…&token=…&limit=… HTTP/1.1" 200' in written
    assert '"GET /v1/unsubscribe/[token]?email=… HTTP/1.1" 200' in written
    assert '"GET /v1/customers/[email] HTTP/1.1" 200' in written


def test_a_line_break_in_a_path_cannot_forge_an_access_log_line() -> None:
    assert redact_request_target("/v1/x%0AINFO:%20fake") == "/v1/x%0AINFO%3A%20fake"


@contextlib.asynccontextmanager
async def _no_lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
