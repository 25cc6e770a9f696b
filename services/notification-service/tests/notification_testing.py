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
    ChurnWarning,
    CloudEvent,
    ConsentState,
    CustomerCreated,
    CustomerSnapshot,
    EventPayload,
    Grade,
    Money,
    OrderPlaced,
    Purpose,
    ScoreUpdated,
    Stage,
    StageChanged,
    ValueTier,
    build_event,
)
from crm_shared.testing import TEST_SETTINGS, ApiClient, running_app, sample_key_records
from notification_service.app import create_app
from notification_service.events.handlers import apply_events
from notification_service.migrate import upgrade
from notification_service.settings import NotificationSettings
from notification_service.workflows.delivery import deliver_due


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


def event(payload: EventPayload, at: datetime, event_id: str | None = None) -> CloudEvent:
    """``payload`` as the event a producer would publish at ``at``."""
    return build_event(payload, source="/tests", time=at, event_id=event_id)


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


def churn_warning(
    customer_id: str,
    at: datetime,
    *,
    action: str = "retention_offer",
    tier: ValueTier | None = ValueTier.GROWTH,
    warning_id: str = "w-1",
    status: str = "open",
) -> CloudEvent:
    """A ``churn.warning`` as lifecycle-service raises it."""
    warning = ChurnWarning(
        warning_id=warning_id,
        customer_id=customer_id,
        raised_at=at,
        status=status,  # type: ignore[arg-type]
        reasons=["churn_risk_above_threshold"],
        churn_risk=0.8,
        value_tier=tier,
        grade=Grade.HIGH,
        predicted_clv_12m=Money(amount=Decimal("420.00"), currency="USD"),
        recommended_action=action,  # type: ignore[arg-type]
    )
    return event(warning, at)


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


def stage_changed(customer_id: str, at: datetime, stage: Stage, previous: Stage) -> CloudEvent:
    """A ``lifecycle.stage_changed``."""
    change = StageChanged(
        customer_id=customer_id,
        previous_stage=previous,
        stage=stage,
        changed_at=at,
        cause="sweep",
        reason="test",
    )
    return event(change, at)


def order(customer_id: str, order_id: str, at: datetime, total: str = "50.00") -> CloudEvent:
    """An ``order.placed``."""
    placed = OrderPlaced(
        order_id=order_id,
        customer_id=customer_id,
        placed_at=at,
        total=Money(amount=Decimal(total), currency="USD"),
    )
    return event(placed, at)


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
