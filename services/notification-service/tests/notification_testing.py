"""Test helpers of notification-service: the app on a migrated database, events, a clock."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_contracts import (
    Channel,
    CloudEvent,
    ConsentState,
    CustomerCreated,
    CustomerSnapshot,
    Grade,
    Money,
    Purpose,
    ScoreUpdated,
    ValueTier,
)
from crm_shared import Scope
from crm_shared.testing import (
    TEST_SETTINGS,
    ApiClient,
    churn_warning,
    event,
    order,
    running_app,
    sample_key_records,
    stage_changed,
)
from notification_service.app import create_app
from notification_service.events.handlers import apply_events
from notification_service.migrate import upgrade
from notification_service.settings import NotificationSettings
from notification_service.workflows.delivery import deliver_due

__all__ = [  # the event factories come from crm_shared.testing, re-exported for the suite
    "app_settings",
    "churn_warning",
    "customer",
    "deliver",
    "event",
    "feed",
    "order",
    "running_api",
    "scores",
    "stage_changed",
]


def app_settings(database_url: str, **overrides: Any) -> NotificationSettings:
    """Settings for a test app: all keys, no loops (tests drive delivery), Kafka off."""
    values: dict[str, Any] = {
        **TEST_SETTINGS,
        "database_url": database_url,
        "api_keys": sample_key_records(),
        "delivery_interval_seconds": 0,
        "max_trigger_age_hours": 0,
        "retry_base_seconds": 1,
        "retry_max_seconds": 4,
        **overrides,
    }
    return NotificationSettings(**values)


@asynccontextmanager
async def running_api(settings: NotificationSettings) -> AsyncIterator[ApiClient]:
    """notification-service running with ``settings``."""
    factory = functools.partial(create_app, settings)
    async with running_app(factory, upgrade, settings.database_url) as client:
        yield client


async def hold_nobody_back(api: ApiClient, rule_id: str = "warning-retention-offer") -> None:
    """Let ``rule_id`` treat every customer: its 10% control group, chosen by a hash of the
    customer's id, would keep the message from a test's random customer in one run of ten."""
    rule = await api.get(f"/v1/rules/{rule_id}")
    assert rule.status_code == 200, rule.text
    treat_all = await api.put(
        f"/v1/rules/{rule_id}", Scope.ADMIN, json={**rule.json(), "holdout_share": 0}
    )
    assert treat_all.status_code == 200, treat_all.text


def customer(
    customer_id: str,
    at: datetime,
    *,
    email: str | None = "ada@example.com",
    phone: str | None = None,
    time_zone: str | None = "Europe/Berlin",
    marketing: Sequence[Channel] = (Channel.EMAIL,),
) -> CloudEvent:
    """``customer.created`` with marketing consent granted on ``marketing`` channels."""
    consents = [
        ConsentState(
            channel=channel, purpose=Purpose.MARKETING, granted=True, source="test", changed_at=at
        )
        for channel in marketing
    ]
    snapshot = CustomerSnapshot(
        customer_id=customer_id,
        email=email,
        phone=phone,
        first_name="Ada",
        last_name="Lovelace",
        time_zone=time_zone,
        consents=consents,
        created_at=at,
        updated_at=at,
    )
    return event(CustomerCreated(customer=snapshot), at)


def scores(customer_id: str, as_of: datetime, churn_risk: float) -> ScoreUpdated:
    """``score.updated`` data: a profit-tier, high-grade "Loyal" customer with ``churn_risk``."""
    zero = Money(amount=Decimal("0"), currency="USD")
    return ScoreUpdated(
        customer_id=customer_id,
        as_of=as_of,
        recency_score=3,
        frequency_score=3,
        monetary_score=3,
        rfm_segment="Loyal",
        order_count=2,
        total_spend=zero,
        spend_12m=zero,
        historic_clv=zero,
        churn_risk=churn_risk,
        value_tier=ValueTier.PROFIT,
        grade=Grade.HIGH,
    )


async def feed(api: ApiClient, events: Sequence[CloudEvent]) -> None:
    """Apply ``events`` one by one, each as a consumed batch of its own (its own transaction)."""
    for item in events:
        async with api.app.state.runtime.sessions() as session, session.begin():
            await apply_events(session, [item])


async def deliver(api: ApiClient, now: datetime, jitter: float = 0.5) -> int:
    """One delivery round at ``now`` (no wall clock), with a fixed jitter."""
    return await deliver_due(
        api.app.state.runtime, api.app.state.delivery, lambda: now, lambda: jitter
    )
