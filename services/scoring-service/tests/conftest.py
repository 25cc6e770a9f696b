"""scoring-service fixtures: the app on a fresh database, with or without the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crm_shared.testing import ApiClient, EmbeddedBroker
from scoring_testing import app_settings, running_api


@pytest.fixture
async def scoring_api(database_url: str) -> AsyncIterator[ApiClient]:
    """scoring-service on a fresh database (SQLite, then PostgreSQL), without Kafka."""
    async with running_api(app_settings(database_url)) as running:
        yield running


@pytest.fixture
async def scoring_with_broker(
    tmp_path: Path, kafka_broker: EmbeddedBroker
) -> AsyncIterator[ApiClient]:
    """scoring-service on SQLite with the real broker and its consumer running."""
    settings = app_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'scoring.db'}",
        kafka_enabled=True,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        service_name=f"scoring-service-{tmp_path.name[-12:]}",
    )
    async with running_api(settings) as running:
        yield running
