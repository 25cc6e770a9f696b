"""Request and response bodies of lifecycle-service (analytics bodies: analytics_schemas)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from crm_contracts import EventTime, Grade, Stage, ValueTier
from crm_shared import request_body_config


class StageEntry(BaseModel):
    """One stage change in a customer's history."""

    previous_stage: Stage | None
    stage: Stage
    at: datetime
    cause: str = Field(description='The triggering event id, or "sweep".')
    reason: str


class WarningView(BaseModel):
    """A churn warning in its latest state."""

    warning_id: str
    customer_id: str
    status: str = Field(description="open, updated (still open), saved or lost.")
    raised_at: datetime
    changed_at: datetime
    reasons: list[str]
    churn_risk: float | None
    value_tier: ValueTier | None
    grade: Grade | None
    predicted_clv_12m: float | None
    recommended_action: str


class WarningAtRiskView(WarningView):
    """An open churn warning with the customer's stage and the 12-month value at risk."""

    stage: Stage | None = Field(description="The customer's lifecycle stage now.")
    clv_at_risk_12m: float | None = Field(
        description="predicted_clv_12m x churn_risk: the 12-month value expected to be lost."
    )


class CustomerStage(BaseModel):
    """Where a customer stands, the facts behind it, and how they got there."""

    customer_id: str
    stage: Stage
    stage_since: datetime
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    order_count: int
    average_order_value: float | None
    expected_interpurchase_days: float | None
    churn_risk: float | None
    value_tier: ValueTier | None
    grade: Grade | None
    predicted_clv_12m: float | None
    next_review_at: datetime | None = Field(
        description="When the aging sweep next looks at this customer; null: only events can."
    )
    open_warning: WarningView | None
    history: list[StageEntry] = Field(description="Every stage change, oldest first.")


class StageMember(BaseModel):
    """A customer in a stage list."""

    customer_id: str
    stage: Stage
    stage_since: datetime
    last_purchase_at: datetime | None
    order_count: int
    churn_risk: float | None
    value_tier: ValueTier | None


class RulesView(BaseModel):
    """A version of the stage rules."""

    version: int = Field(description="0 is the built-in defaults, never stored.")
    created_at: datetime | None
    created_by: str
    comment: str | None
    rules: dict[str, Any]


class RulesReplacement(BaseModel):
    """New stage rules; fields left out take their default value."""

    model_config = request_body_config(
        {
            "rules": {"at_risk_from_days": 60, "dormant_from_days": 150},
            "comment": "fashion: shorter buying cycle",
        }
    )

    rules: dict[str, Any] = Field(description="Rules as returned by GET /v1/rules.")
    comment: str | None = Field(default=None, max_length=500)


class DryRunRequest(BaseModel):
    """Candidate rules to compare with the rules in force."""

    model_config = request_body_config()

    rules: dict[str, Any] = Field(description="Candidate rules; left-out fields take defaults.")
    as_of: EventTime | None = Field(default=None, description="Defaults to now.")


class StageMove(BaseModel):
    """How many customers would move from one stage to another."""

    from_stage: Stage
    to_stage: Stage
    customers: int


class DryRunView(BaseModel):
    """What a sweep at ``as_of`` would do under the candidate rules and under those in force."""

    as_of: datetime
    rules_version: int = Field(description="The version in force the candidate is compared to.")
    customers: int
    candidate_moves: list[StageMove]
    candidate_movers: int
    candidate_warnings: int = Field(description="Customers the candidate rules would warn.")
    current_moves: list[StageMove] = Field(
        description="What the next sweep would do anyway under the rules in force."
    )
    current_warnings: int


class SweepRequest(BaseModel):
    """Run the aging sweep now, at ``as_of`` (defaults to now; a replay may sweep the past)."""

    model_config = request_body_config({"as_of": "1997-09-30T00:00:00Z"})

    as_of: EventTime | None = None


class SweepView(BaseModel):
    """One aging sweep."""

    as_of: datetime
    reviewed: int = Field(description="Customers whose review time had come.")
    moved: int = Field(description="Stage changes made.")
    warnings_raised: int = Field(description="Warnings opened or updated.")
    warnings_closed: int = Field(description="Warnings closed as lost by expiry.")
    seconds: float | None = None
    trigger: str | None = None
