"""Triggers: an incoming event as playbook rules see it, and the event types rules can match.

``activity.recorded`` and ``feedback.recorded`` triggers carry the activity type, or the
feedback kind, survey and score; ``churn.warning`` triggers the warning's status and action.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from crm_contracts import (
    ActivityRecorded,
    ChurnWarning,
    CustomerCreated,
    FeedbackRecorded,
    Grade,
    OrderPlaced,
    Stage,
    StageChanged,
    ValueTier,
)

__all__ = [
    "ACTIVITY_RECORDED",
    "CHURN_WARNING",
    "CUSTOMER_CREATED",
    "FEEDBACK_RECORDED",
    "MATCHABLE_EVENT_TYPES",
    "ORDER_PLACED",
    "STAGE_CHANGED",
    "Trigger",
]

CHURN_WARNING: Final = ChurnWarning.event_type
STAGE_CHANGED: Final = StageChanged.event_type
CUSTOMER_CREATED: Final = CustomerCreated.event_type
ORDER_PLACED: Final = OrderPlaced.event_type
ACTIVITY_RECORDED: Final = ActivityRecorded.event_type
FEEDBACK_RECORDED: Final = FeedbackRecorded.event_type
MATCHABLE_EVENT_TYPES: Final = frozenset(
    {
        CHURN_WARNING,
        STAGE_CHANGED,
        CUSTOMER_CREATED,
        ORDER_PLACED,
        ACTIVITY_RECORDED,
        FEEDBACK_RECORDED,
    }
)


def report_key(kind: str, report_id: str) -> str:
    """A fixed-length stand-in for a shop's report id (up to 200 characters of any kind), so the
    de-duplication key stays short and needs no escaping."""
    return f"{kind}-{hashlib.sha256(report_id.encode()).hexdigest()[:40]}"


@dataclass(frozen=True)
class Trigger:
    """An incoming event as rules see it: who, what, when, and the facts conditions read."""

    event_id: str
    event_type: str
    customer_id: str
    occurred_at: datetime
    stage: Stage | None = None
    previous_stage: Stage | None = None
    value_tier: ValueTier | None = None
    grade: Grade | None = None
    churn_risk: float | None = None
    rfm_segment: str | None = None
    cluster: str | None = None
    warning_status: str | None = None
    recommended_action: str | None = None
    is_first_order: bool | None = None
    activity_type: str | None = None
    feedback_kind: str | None = None
    survey: str | None = None
    survey_score: int | None = None
    # The report's own id as the shop sent it (see `report_key`). Shops publish these events
    # themselves, so a report sent again may carry a new event id; de-duplicating by the
    # report's id keeps it to one message.
    report_id: str | None = None

    @property
    def occurrence_id(self) -> str:
        """What makes this trigger one occurrence: the report's id, else the event's."""
        return self.report_id or self.event_id

    def __post_init__(self) -> None:
        # Delays and quiet hours are arithmetic on instants; a naive time would shift silently.
        if self.occurred_at.utcoffset() is None:
            raise ValueError("occurred_at must be timezone-aware")

    @classmethod
    def from_churn_warning(cls, event_id: str, warning: ChurnWarning) -> Trigger:
        """A trigger for a ``churn.warning`` event with envelope id ``event_id``."""
        return cls(
            event_id=event_id,
            event_type=CHURN_WARNING,
            customer_id=warning.customer_id,
            occurred_at=warning.raised_at,
            value_tier=warning.value_tier,
            grade=warning.grade,
            churn_risk=warning.churn_risk,
            warning_status=warning.status,
            recommended_action=warning.recommended_action,
        )

    @classmethod
    def from_stage_changed(cls, event_id: str, change: StageChanged) -> Trigger:
        """A trigger for a ``lifecycle.stage_changed`` event with envelope id ``event_id``."""
        return cls(
            event_id=event_id,
            event_type=STAGE_CHANGED,
            customer_id=change.customer_id,
            occurred_at=change.changed_at,
            stage=change.stage,
            previous_stage=change.previous_stage,
        )

    @classmethod
    def from_customer_created(cls, event_id: str, created: CustomerCreated) -> Trigger:
        """A trigger for a ``customer.created`` event with envelope id ``event_id``."""
        return cls(
            event_id=event_id,
            event_type=CUSTOMER_CREATED,
            customer_id=created.customer.customer_id,
            occurred_at=created.customer.created_at,
        )

    @classmethod
    def from_order_placed(
        cls, event_id: str, order: OrderPlaced, *, is_first_order: bool
    ) -> Trigger:
        """A trigger for ``order.placed``; whether it is the first order comes from the replica."""
        return cls(
            event_id=event_id,
            event_type=ORDER_PLACED,
            customer_id=order.customer_id,
            occurred_at=order.placed_at,
            is_first_order=is_first_order,
        )

    @classmethod
    def from_activity(cls, event_id: str, activity: ActivityRecorded) -> Trigger:
        """A trigger for ``activity.recorded`` (a page view, an abandoned cart ...)."""
        return cls(
            event_id=event_id,
            event_type=ACTIVITY_RECORDED,
            customer_id=activity.customer_id,
            occurred_at=activity.occurred_at,
            activity_type=activity.activity_type,
            report_id=report_key("activity", activity.activity_id),
        )

    @classmethod
    def from_feedback(cls, event_id: str, feedback: FeedbackRecorded) -> Trigger:
        """A trigger for ``feedback.recorded`` (a complaint, a ticket, a survey answer ...)."""
        return cls(
            event_id=event_id,
            event_type=FEEDBACK_RECORDED,
            customer_id=feedback.customer_id,
            occurred_at=feedback.occurred_at,
            feedback_kind=feedback.kind.value,
            survey=feedback.survey.value if feedback.survey else None,
            survey_score=feedback.score,
            report_id=report_key("feedback", feedback.feedback_id),
        )
