"""Test helpers of profile-service: a running app with a key per scope."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from crm_shared import Scope, generate_api_key
from profile_service.app import create_app
from profile_service.migrate import upgrade
from profile_service.settings import ProfileSettings

KEYS = {
    scope: generate_api_key(f"test-{scope.value}", [scope])
    for scope in (Scope.READ, Scope.WRITE, Scope.ADMIN)
}


@dataclass
class Api:
    """An HTTP client of a running profile-service, with a key per scope."""

    client: httpx.AsyncClient
    app: FastAPI

    def as_(self, scope: Scope) -> dict[str, str]:
        return {"X-API-Key": KEYS[scope][0]}

    async def create_customer(self, **fields: Any) -> dict[str, Any]:
        """Create a customer with a writer key; fails the test unless created."""
        response = await self.client.post(
            "/v1/customers", json=fields, headers=self.as_(Scope.WRITE)
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def get(self, url: str, scope: Scope = Scope.READ, **kwargs: Any) -> httpx.Response:
        return await self.client.get(url, headers=self.as_(scope), **kwargs)

    async def post(self, url: str, scope: Scope = Scope.WRITE, **kwargs: Any) -> httpx.Response:
        headers = {**self.as_(scope), **kwargs.pop("headers", {})}
        return await self.client.post(url, headers=headers, **kwargs)


def app_settings(database_url: str, **overrides: Any) -> ProfileSettings:
    """Settings for a test app: all keys, Kafka off unless a broker is given."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "api_keys": [record for _, record in KEYS.values()],
        "kafka_enabled": False,
        "default_phone_region": "DE",
        "kafka_session_timeout_ms": 6_000,
        "kafka_rebalance_timeout_ms": 2_000,
        "outbox_poll_interval_seconds": 0.1,
        **overrides,
    }
    return ProfileSettings(**values)


@asynccontextmanager
async def running_api(settings: ProfileSettings) -> AsyncIterator[Api]:
    """Migrate the database, run the app's lifespan, and hand out a client."""
    await asyncio.to_thread(upgrade, settings.database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://profile") as client:
            yield Api(client, app)
