"""lifecycle-service fixtures: the app on a fresh database, with or without the real broker."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from crm_shared.testing import ApiClient
from lifecycle_testing import app_settings, running_api


@pytest.fixture
async def lifecycle_api(database_url: str) -> AsyncIterator[ApiClient]:
    """lifecycle-service on a fresh database (SQLite, then PostgreSQL), without Kafka."""
    async with running_api(app_settings(database_url)) as running:
        yield running
