"""Test helpers of profile-service: the app on a migrated database, with a key per scope."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from crm_shared import ReadCache, Scope
from crm_shared.testing import TEST_SETTINGS, ApiClient, running_app, sample_key_records
from profile_service.app import create_app
from profile_service.migrate import upgrade
from profile_service.settings import ProfileSettings


class Api(ApiClient):
    """A client of profile-service."""

    async def create_customer(self, **fields: Any) -> dict[str, Any]:
        """Create a customer with a writer key; fails the test unless created."""
        response = await self.post("/v1/customers", json=fields)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


def app_settings(database_url: str, **overrides: Any) -> ProfileSettings:
    """Settings for a test app: all keys, Kafka off unless a broker is given."""
    values: dict[str, Any] = {
        **TEST_SETTINGS,
        "database_url": database_url,
        "api_keys": sample_key_records(),
        "default_phone_region": "DE",
        **overrides,
    }
    return ProfileSettings(**values)


@asynccontextmanager
async def running_api(settings: ProfileSettings) -> AsyncIterator[Api]:
    """profile-service running with `settings`."""
    factory = functools.partial(create_app, settings)
    async with running_app(factory, upgrade, settings.database_url) as client:
        yield Api(client.client, client.app)


WAIT_SECONDS = 30.0


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `condition` until it holds; fail the test naming `what` if it never does."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)


def cache_of(api: Api) -> ReadCache:
    """The app's 360 cache."""
    cache: ReadCache = api.app.state.customer_360_cache
    return cache


async def listening(api: Api) -> None:
    """Wait until the app's 360 cache listens for changes."""

    async def enabled() -> bool:
        return cache_of(api).enabled

    await wait_for(enabled, "the 360 cache listens for changes")


async def read_360(api: Api, customer_id: str) -> dict[str, Any]:
    """A 360 that must answer 200."""
    response = await api.get(f"/v1/customers/{customer_id}/360")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def read_until_cached(api: Api, customer_id: str) -> bytes:
    """Read a 360 until the cache keeps it (a notice of the customer's creation may still
    arrive during the first reads, and a body read across a notice is not kept)."""

    async def kept() -> bool:
        await read_360(api, customer_id)
        return cache_of(api).get(customer_id) is not None

    await wait_for(kept, "the 360 is kept")
    body = cache_of(api).get(customer_id)
    assert body is not None
    return body


__all__ = [
    "Api",
    "Scope",
    "app_settings",
    "cache_of",
    "listening",
    "read_360",
    "read_until_cached",
    "running_api",
    "wait_for",
]
