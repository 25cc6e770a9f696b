"""Test helpers of profile-service: the app on a migrated database, with a key per scope."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from crm_shared import Scope
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


__all__ = ["Api", "Scope", "app_settings", "running_api"]
