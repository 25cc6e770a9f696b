"""Event factories shared by the test suites and the benchmarks: the events the services consume,
as a producer would publish them (source ``/tests``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from crm_contracts import (
    ChurnWarning,
    CloudEvent,
    EventPayload,
    Grade,
    Money,
    OrderPlaced,
    Stage,
    StageChanged,
    ValueTier,
    build_event,
)

_SOURCE = "/tests"


def event(payload: EventPayload, at: datetime, event_id: str | None = None) -> CloudEvent:
    """``payload`` as the event a producer would publish at ``at``."""
    return build_event(payload, source=_SOURCE, time=at, event_id=event_id)


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
        status=status,
        reasons=["churn_risk_above_threshold"],
        churn_risk=0.8,
        value_tier=tier,
        grade=Grade.HIGH,
        predicted_clv_12m=Money(amount=Decimal("420.00"), currency="USD"),
        recommended_action=action,
    )
    return event(warning, at)


def stage_changed(customer_id: str, at: datetime, stage: Stage, previous: Stage) -> CloudEvent:
    """A ``lifecycle.stage_changed`` of a sweep."""
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
    """An ``order.placed`` of ``total`` USD."""
    placed = OrderPlaced(
        order_id=order_id,
        customer_id=customer_id,
        placed_at=at,
        total=Money(amount=Decimal(total), currency="USD"),
    )
    return event(placed, at)
