"""Event factories for the benchmarks: the events the services consume, with every field set.

The consumed events come from crm_shared.testing (the same factories the test suites use, so a
benchmark needs no test folder on its path); the full payloads below are the benchmarks' own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from crm_contracts import (
    Category,
    Grade,
    Money,
    NotificationChannel,
    NotificationSent,
    ScoreUpdated,
    Stage,
    StageChanged,
    ValueTier,
)
from crm_shared.testing import churn_warning, event, order, stage_changed

__all__ = [  # the consumed events are crm_shared.testing's, re-exported for the benchmarks
    "churn_warning",
    "event",
    "full_notification_sent",
    "full_score_updated",
    "full_stage_changed",
    "order",
    "stage_changed",
]


def _eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def full_score_updated(customer_id: str, at: datetime, **overrides: Any) -> ScoreUpdated:
    """A ``score.updated`` payload with every field filled in."""
    fields: dict[str, Any] = {
        "customer_id": customer_id,
        "as_of": at,
        "model_version": "clv-2025-03-01",
        "recency_score": 5,
        "frequency_score": 4,
        "monetary_score": 3,
        "rfm_segment": "champions",
        "order_count": 7,
        "first_purchase_at": at - timedelta(days=400),
        "last_purchase_at": at,
        "total_spend": _eur("640.10"),
        "spend_12m": _eur("310.00"),
        "average_order_value": _eur("91.44"),
        "p_alive": 0.82,
        "expected_purchases_30d": 0.4,
        "expected_purchases_90d": 1.1,
        "expected_purchases_365d": 3.9,
        "churn_risk": 0.18,
        "expected_interpurchase_days": 41.5,
        "predicted_clv_12m": _eur("355.20"),
        "historic_clv": _eur("640.10"),
        "health_index": 76.0,
        "value_tier": ValueTier.GROWTH,
        "grade": Grade.HIGH,
        "cluster": "bargain_hunters",
    }
    return ScoreUpdated(**(fields | overrides))


def full_stage_changed(customer_id: str, at: datetime) -> StageChanged:
    """A ``lifecycle.stage_changed`` payload with every field filled in."""
    return StageChanged(
        customer_id=customer_id,
        previous_stage=Stage.ACTIVE,
        stage=Stage.LOYAL,
        changed_at=at,
        cause="sweep",
        reason="5th order within 12 months",
    )


def full_notification_sent(customer_id: str, at: datetime) -> NotificationSent:
    """A ``notification.sent`` payload with every field filled in."""
    return NotificationSent(
        notification_id="ntf-1",
        customer_id=customer_id,
        rule_id="winback-vip",
        template_id="winback-offer-v2",
        channel=NotificationChannel.EMAIL,
        category=Category.MARKETING,
        trigger_event_id="evt-1",
        sent_at=at,
    )
