"""A service app under test: migrated database, running lifespan, a client with a key per scope."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from crm_shared._auth import generate_api_key
from crm_shared._settings import ApiKeyRecord, Scope
from crm_shared.testing._templates import fill_from_template

TEST_KEYS = {
    scope: generate_api_key(f"test-{scope.value}", [scope])
    for scope in (Scope.READ, Scope.WRITE, Scope.ADMIN)
}


def sample_key_records() -> list[ApiKeyRecord]:
    """The stored records of the test keys, for a service's settings."""
    return [record for _, record in TEST_KEYS.values()]


TEST_SETTINGS: dict[str, Any] = {
    "environment": "test",
    "kafka_enabled": False,
    # The embedded broker waits about a session timeout on each group join: keep it short.
    "kafka_session_timeout_ms": 6_000,
    "kafka_rebalance_timeout_ms": 2_000,
    "outbox_poll_interval_seconds": 0.1,
}


@dataclass
class ApiClient:
    """An HTTP client of a running service app, with a key per scope."""

    client: httpx.AsyncClient
    app: FastAPI

    def as_(self, scope: Scope) -> dict[str, str]:
        """Headers carrying the test key of `scope`."""
        return {"X-API-Key": TEST_KEYS[scope][0]}

    async def get(self, url: str, scope: Scope = Scope.READ, **kwargs: Any) -> httpx.Response:
        """GET with a key of `scope` (read by default)."""
        return await self.client.get(url, headers=self.as_(scope), **kwargs)

    async def post(self, url: str, scope: Scope = Scope.WRITE, **kwargs: Any) -> httpx.Response:
        """POST with a key of `scope` (write by default)."""
        headers = {**self.as_(scope), **kwargs.pop("headers", {})}
        return await self.client.post(url, headers=headers, **kwargs)

    async def put(self, url: str, scope: Scope = Scope.WRITE, **kwargs: Any) -> httpx.Response:
        """PUT with a key of `scope` (write by default)."""
        headers = {**self.as_(scope), **kwargs.pop("headers", {})}
        return await self.client.put(url, headers=headers, **kwargs)


@asynccontextmanager
async def running_app(
    create_app: Callable[[], FastAPI], migrate: Callable[[str], None], database_url: str
) -> AsyncIterator[ApiClient]:
    """Migrate the database (a fresh one: copy a migrated template), run the app's lifespan,
    and hand out a client."""
    if not await fill_from_template(migrate, database_url):
        # Alembic's env runs its own event loop: give it a thread without one.
        await asyncio.to_thread(migrate, database_url)
    app = create_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
            yield ApiClient(client, app)
