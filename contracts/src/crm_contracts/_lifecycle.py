"""Lifecycle events (topic crm.lifecycle), published by lifecycle-service."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from crm_contracts._bounds import EventTime
from crm_contracts._payload import CustomerId, EventPayload, Money, Topic
from crm_contracts._scores import Grade, ValueTier


class Stage(StrEnum):
    """Where a customer stands in the relationship."""

    PROSPECT = "prospect"
    NEW = "new"
    ACTIVE = "active"
    LOYAL = "loyal"
    AT_RISK = "at_risk"
    DORMANT = "dormant"
    CHURNED = "churned"
    WON_BACK = "won_back"


class StageChanged(EventPayload):
    """A customer moved to another lifecycle stage, because of an event or because time passed."""

    event_type: ClassVar[str] = "lifecycle.stage_changed"
    topic: ClassVar[Topic] = Topic.LIFECYCLE

    customer_id: CustomerId
    previous_stage: Stage | None = Field(
        default=None, description="The stage before; null for a new customer.", examples=["active"]
    )
    stage: Stage = Field(description="The stage now.", examples=["loyal"])
    changed_at: EventTime = Field(examples=["2025-03-14T09:30:00Z"])
    cause: str = Field(
        min_length=1,
        description='The id of the event that triggered the change, or "sweep" for aging.',
        examples=["01932c4f-0a1b-7c3b-8d2e-9f0a1b2c3d4e", "sweep"],
    )
    reason: str = Field(
        description="The rule that moved the customer, in words.",
        examples=["5th order within 12 months"],
    )


class ChurnWarning(EventPayload):
    """A valuable customer may be slipping away; someone should act before they are lost.

    One warning is raised, then updated, and finally closed as saved or lost, or withdrawn
    (reason ``profiling_objection``) when the customer objects to profiling: no one may act on
    an automated evaluation of them any more.
    """

    event_type: ClassVar[str] = "churn.warning"
    topic: ClassVar[Topic] = Topic.LIFECYCLE

    warning_id: str = Field(
        min_length=1,
        description="Stays the same while the warning is updated and closed.",
        examples=["01932c4f-1111-7c3b-8d2e-9f0a1b2c3d4e"],
    )
    customer_id: CustomerId
    raised_at: EventTime = Field(
        description="When this state of the warning was reached.",
        examples=["2025-03-14T09:30:00Z"],
    )
    status: Literal["open", "updated", "saved", "lost", "withdrawn"] = Field(examples=["open"])
    reasons: list[str] = Field(
        min_length=1,
        description=(
            "Why the customer looks at risk: every signal that fired, among"
            " churn_risk_above_threshold, spend_dropped, silence_past_rhythm (from orders,"
            " scores and time) and complaint_surge, detractor_answer (from feedback)."
        ),
        examples=[["churn_risk_above_threshold", "spend_dropped"], ["complaint_surge"]],
    )
    churn_risk: float | None = Field(default=None, ge=0.0, le=1.0, examples=[0.71])
    value_tier: ValueTier | None = Field(default=None, examples=["strategic_partner"])
    grade: Grade | None = Field(default=None, examples=["vip"])
    predicted_clv_12m: Money | None = Field(
        default=None, description="What is at stake over the next 12 months."
    )
    recommended_action: Literal["account_manager_task", "retention_offer"] = Field(
        description="What the business should do about it.", examples=["retention_offer"]
    )
