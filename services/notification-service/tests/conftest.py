"""notification-service fixtures: a mail sink and the app on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from notification_servers import SmtpSink, smtp_sink

from crm_shared.testing import ApiClient
from notification_testing import app_settings, running_api


@pytest.fixture
async def mail() -> AsyncIterator[SmtpSink]:
    """A local SMTP server that keeps every message."""
    async with smtp_sink() as sink:
        yield sink


@pytest.fixture
async def notification_api(database_url: str, mail: SmtpSink) -> AsyncIterator[ApiClient]:
    """notification-service on a fresh database (SQLite, then PostgreSQL), mailing to ``mail``."""
    settings = app_settings(database_url, smtp_host=mail.host, smtp_port=mail.port)
    async with running_api(settings) as running:
        yield running
