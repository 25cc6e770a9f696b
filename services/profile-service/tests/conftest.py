"""profile-service fixtures: the app on a fresh database, with or without the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crm_shared.testing import EmbeddedBroker
from profile_testing import Api, app_settings, listening, running_api


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[Api]:
    """profile-service on a fresh database (SQLite, then PostgreSQL), without Kafka."""
    async with running_api(app_settings(database_url)) as running:
        yield running


@pytest.fixture
async def api_with_broker(tmp_path: Path, kafka_broker: EmbeddedBroker) -> AsyncIterator[Api]:
    """profile-service on SQLite with the real broker, relay and consumer running."""
    settings = app_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'profile.db'}",
        kafka_enabled=True,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        service_name=f"profile-service-{tmp_path.name[-12:]}",
    )
    async with running_api(settings) as running:
        yield running


@pytest.fixture
async def pg_api(postgres_url: str) -> AsyncIterator[Api]:
    """profile-service on PostgreSQL, where the 360 cache is on."""
    # A TTL far longer than any test: a body gone from the cache was invalidated.
    settings = app_settings(postgres_url, customer_360_cache_seconds=300)
    async with running_api(settings) as running:
        await listening(running)
        yield running
