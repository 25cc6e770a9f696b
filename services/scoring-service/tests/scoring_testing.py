"""Test helpers of scoring-service: the app on a migrated database, CDNOW purchases as events."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from crm_contracts import Money, OrderPlaced
from crm_shared.testing import TEST_SETTINGS, ApiClient, running_app, sample_key_records
from scoring_service.app import create_app
from scoring_service.migrate import upgrade
from scoring_service.settings import ScoringSettings

DATA = Path(__file__).parent / "data"


def app_settings(database_url: str, **overrides: Any) -> ScoringSettings:
    """Settings for a test app: all keys, no loops (tests drive them), Kafka off by default."""
    values: dict[str, Any] = {
        **TEST_SETTINGS,
        "database_url": database_url,
        "api_keys": sample_key_records(),
        "refit_interval_seconds": 0,
        "rescore_interval_seconds": 0,
        "pending_rescore_interval_seconds": 0,
        "summary_refresh_interval_seconds": 0,
        **overrides,
    }
    return ScoringSettings(**values)


@asynccontextmanager
async def running_api(settings: ScoringSettings) -> AsyncIterator[ApiClient]:
    """scoring-service running with `settings`."""
    factory = functools.partial(create_app, settings)
    async with running_app(factory, upgrade, settings.database_url) as client:
        yield client


@dataclass(frozen=True)
class CdnowPurchase:
    """One line of the CDNOW sample: who bought on which day for how much."""

    line: int
    customer: str
    day: date
    dollars: Decimal

    def as_order(self) -> OrderPlaced:
        """The purchase as the order event a shop would publish."""
        return OrderPlaced(
            order_id=f"cdnow-{self.line}",
            customer_id=self.customer,
            placed_at=datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC),
            total=Money(amount=self.dollars, currency="USD"),
        )


def cdnow_purchases() -> Iterator[CdnowPurchase]:
    """The 6,919 purchases of the CDNOW sample (see data/PROVENANCE.md)."""
    with (DATA / "CDNOW_sample.txt").open() as lines:
        for number, line in enumerate(lines, start=1):
            _master, sample_id, yyyymmdd, _cds, dollars = line.split()
            yield CdnowPurchase(
                line=number,
                customer=f"cdnow-{int(sample_id):04d}",
                day=date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])),
                dollars=Decimal(dollars),
            )
