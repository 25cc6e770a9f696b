"""Test helpers of lifecycle-service: the app on a migrated database, events to feed it."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

from crm_contracts import (
    CloudEvent,
    EventPayload,
    FeedbackRecorded,
    Grade,
    Money,
    OrderPlaced,
    ScoreUpdated,
    ValueTier,
    build_event,
)
from crm_shared.testing import TEST_SETTINGS, ApiClient, running_app, sample_key_records
from lifecycle_service.app import create_app
from lifecycle_service.events.event_batch import apply_events
from lifecycle_service.migrate import upgrade
from lifecycle_service.settings import LifecycleSettings


def app_settings(database_url: str, **overrides: Any) -> LifecycleSettings:
    """Settings for a test app: all keys, no scheduled sweep (tests drive it), Kafka off."""
    values: dict[str, Any] = {
        **TEST_SETTINGS,
        "database_url": database_url,
        "api_keys": sample_key_records(),
        "sweep_interval_seconds": 0,
        **overrides,
    }
    return LifecycleSettings(**values)


@asynccontextmanager
async def running_api(settings: LifecycleSettings) -> AsyncIterator[ApiClient]:
    """lifecycle-service running with ``settings``."""
    factory = functools.partial(create_app, settings)
    async with running_app(factory, upgrade, settings.database_url) as client:
        yield client


def event(payload: EventPayload, at: datetime, event_id: str | None = None) -> CloudEvent:
    """``payload`` as the event a producer would publish at ``at``."""
    return build_event(payload, source="/tests", time=at, event_id=event_id)


def order(customer_id: str, order_id: str, at: datetime, amount: str = "50.00") -> CloudEvent:
    """An ``order.placed`` event."""
    placed = OrderPlaced(
        order_id=order_id,
        customer_id=customer_id,
        placed_at=at,
        total=Money(amount=Decimal(amount), currency="USD"),
    )
    return event(placed, at)


def scores(
    customer_id: str,
    at: datetime,
    *,
    churn_risk: float | None,
    tier: ValueTier | None = None,
    grade: Grade | None = None,
    rhythm_days: float | None = None,
    clv: str | None = None,
    orders: int = 1,
) -> CloudEvent:
    """A ``score.updated`` event with the fields lifecycle reads; the rest are plausible."""
    zero = Money(amount=Decimal("0"), currency="USD")
    payload = ScoreUpdated(
        customer_id=customer_id,
        as_of=at,
        recency_score=3,
        frequency_score=3,
        monetary_score=3,
        rfm_segment="Need Attention",
        order_count=orders,
        total_spend=zero,
        spend_12m=zero,
        churn_risk=churn_risk,
        expected_interpurchase_days=rhythm_days,
        predicted_clv_12m=Money(amount=Decimal(clv), currency="USD") if clv else None,
        historic_clv=zero,
        value_tier=tier,
        grade=grade,
    )
    return event(payload, at)


def feedback(
    customer_id: str, feedback_id: str, at: datetime, kind: str = "complaint", **facts: Any
) -> CloudEvent:
    """A ``feedback.recorded`` event: a complaint unless told otherwise."""
    payload = FeedbackRecorded(
        customer_id=customer_id, feedback_id=feedback_id, kind=kind, occurred_at=at, **facts
    )
    return event(payload, at)


def nps(customer_id: str, feedback_id: str, at: datetime, score: int) -> CloudEvent:
    """An NPS answer."""
    return feedback(customer_id, feedback_id, at, "survey_answer", survey="nps", score=score)


async def feed(api: ApiClient, events: Sequence[CloudEvent]) -> None:
    """Apply ``events`` as one consumed batch, in the service's own transaction code.

    The consumer's own path (inbox, offsets, dead letters) is covered by the broker tests;
    here the stage logic is fed directly so a test can control batch boundaries.
    """
    async with api.app.state.runtime.sessions() as session, session.begin():
        await apply_events(session, events)
