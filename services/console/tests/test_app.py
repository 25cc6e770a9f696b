"""The console app without the services: login is required, forms need the CSRF token, the
cookie has its flags and every answer its security headers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from crm_console.app import create_app
from crm_console.session import COOKIE_NAME, anonymous_session
from crm_console.settings import ConsoleSettings

# Nothing listens on port 9 (discard) of the loopback: the services do not answer.
NOWHERE = "http://127.0.0.1:9"


def settings(**overrides: object) -> ConsoleSettings:
    services = ("profile", "scoring", "lifecycle", "notification")
    urls = {f"{name}_service_url": NOWHERE for name in services}
    return ConsoleSettings(**{**urls, **overrides})  # type: ignore[arg-type]


async def client_for(console_settings: ConsoleSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(console_settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://console.test"
        ) as client,
    ):
        yield client


@pytest.fixture
async def console() -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(settings()):
        yield client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def test_pages_send_an_anonymous_visitor_to_the_login(console: httpx.AsyncClient) -> None:
    for path in ("/", "/customers/c1", "/playbooks", "/exports/warnings.csv"):
        answer = await console.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/login"


async def test_the_login_page_sets_a_strict_http_only_cookie_and_security_headers(
    console: httpx.AsyncClient,
) -> None:
    answer = await console.get("/login")

    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=strict" in cookie
    assert "secure" not in cookie  # development: plain http on the loopback
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY"


async def test_outside_development_the_cookie_is_secure() -> None:
    async for client in client_for(settings(environment="production", session_secret="s" * 32)):
        answer = await client.get("/login")
        assert "secure" in answer.headers["set-cookie"].lower()


async def test_a_form_without_its_csrf_token_is_refused(console: httpx.AsyncClient) -> None:
    await console.get("/login")
    refused = await console.post("/login", data={"api_key": "crm_x"})
    assert refused.status_code == 403
    forged = await console.post("/login", data={"api_key": "crm_x", "csrf_token": "guess"})
    assert forged.status_code == 403


async def test_a_key_that_cannot_be_checked_does_not_log_in(console: httpx.AsyncClient) -> None:
    token = csrf_of((await console.get("/login")).text)
    answer = await console.post("/login", data={"api_key": "crm_x", "csrf_token": token})
    assert answer.status_code == 401
    assert "could not be checked" in answer.text
    assert (await console.get("/")).status_code == 303


async def test_a_customer_id_search_stays_on_this_console() -> None:
    app = create_app(settings())
    session = anonymous_session().with_key("crm_some-key")
    cookie = app.state.session_codec.encode(session)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="https://console.test",
            cookies={COOKIE_NAME: cookie},
        ) as client,
    ):
        answer = await client.get("/customers", params={"by": "customer_id", "q": "//evil.test/x"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/customers/%2F%2Fevil.test%2Fx"
