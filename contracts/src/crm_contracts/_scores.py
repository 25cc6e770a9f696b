"""Score events (topic crm.scores), published by scoring-service after every (re-)scoring."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from crm_contracts._bounds import EventTime
from crm_contracts._payload import CustomerId, EventPayload, Money, Topic


class ValueTier(StrEnum):
    """Where a customer sits by value today and value to come."""

    STRATEGIC_PARTNER = "strategic_partner"
    GROWTH = "growth"
    PROFIT = "profit"
    BASIC = "basic"


class Grade(StrEnum):
    """A coarse customer grade for people who do not read scores."""

    VIP = "vip"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


RfmScore = Annotated[int, Field(ge=1, le=5, examples=[4])]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
ExpectedPurchases = Annotated[float, Field(ge=0.0)]


class ScoreUpdated(EventPayload):
    """A customer's scores were recomputed, after a purchase or by the scheduled re-scoring."""

    event_type: ClassVar[str] = "score.updated"
    topic: ClassVar[Topic] = Topic.SCORES

    customer_id: CustomerId
    as_of: EventTime = Field(
        description="The moment the scores describe.", examples=["2025-03-14T09:30:00Z"]
    )
    model_version: str | None = Field(
        default=None,
        description="The fitted CLV model that produced the predictions.",
        examples=["clv-2025-03-01"],
    )
    recency_score: RfmScore = Field(description="RFM recency quintile, 5 = bought most recently.")
    frequency_score: RfmScore = Field(description="RFM frequency quintile, 5 = buys most often.")
    monetary_score: RfmScore = Field(description="RFM monetary quintile, 5 = spends most.")
    rfm_segment: str = Field(
        description="The named RFM segment.", examples=["champions", "at_risk", "hibernating"]
    )
    rfm_segment_caveat: str | None = Field(
        default=None,
        max_length=500,
        description=(
            "Set when the customer base is too small or too uniform for RFM quintiles: why the"
            " RFM scores and segment are provisional. Null when they are not."
        ),
        examples=[
            "Provisional RFM segment: the base has 1 customer, too few for quintiles (need 20);"
            " recency, frequency, monetary value rank nobody (most of the base shares one value,"
            " scored 3)."
        ],
    )
    order_count: int = Field(ge=0, description="Orders placed, net of cancellations.", examples=[7])
    first_purchase_at: EventTime | None = Field(default=None, examples=["2023-11-02T18:04:00Z"])
    last_purchase_at: EventTime | None = Field(default=None, examples=["2025-03-14T09:26:53Z"])
    total_spend: Money = Field(description="Everything spent, net of refunds.")
    spend_12m: Money = Field(description="Spent in the 12 months before `as_of`.")
    average_order_value: Money | None = Field(
        default=None, description="Mean order value; absent before the first order."
    )
    p_alive: Probability | None = Field(
        default=None,
        description="Probability that the customer will still buy (BG/NBD).",
        examples=[0.82],
    )
    expected_purchases_30d: ExpectedPurchases | None = Field(
        default=None, description="Expected purchases in the next 30 days.", examples=[0.4]
    )
    expected_purchases_90d: ExpectedPurchases | None = Field(
        default=None, description="Expected purchases in the next 90 days.", examples=[1.1]
    )
    expected_purchases_365d: ExpectedPurchases | None = Field(
        default=None, description="Expected purchases in the next 365 days.", examples=[3.9]
    )
    churn_risk: Probability | None = Field(
        default=None, description="Risk that the customer is lost, 0 to 1.", examples=[0.18]
    )
    expected_interpurchase_days: float | None = Field(
        default=None, ge=0.0, description="Typical days between purchases.", examples=[41.5]
    )
    predicted_clv_12m: Money | None = Field(
        default=None, description="Predicted spend over the next 12 months (Gamma-Gamma)."
    )
    historic_clv: Money = Field(description="Value the customer has brought so far.")
    health_index: float | None = Field(
        default=None,
        ge=0.0,
        le=100.0,
        description="Relationship health, 0 (lost) to 100 (thriving).",
        examples=[76.0],
    )
    value_tier: ValueTier | None = Field(default=None, examples=["growth"])
    grade: Grade | None = Field(default=None, examples=["high"])
    cluster: str | None = Field(
        default=None, description="The K-means segment label.", examples=["bargain_hunters"]
    )


class SegmentChanged(EventPayload):
    """A customer moved from one segment to another on one segmentation dimension."""

    event_type: ClassVar[str] = "segment.changed"
    topic: ClassVar[Topic] = Topic.SCORES

    customer_id: CustomerId
    as_of: EventTime = Field(
        description="The moment of the scoring that moved the customer.",
        examples=["2025-03-14T09:30:00Z"],
    )
    dimension: Literal["rfm_segment", "value_tier", "grade", "cluster"] = Field(
        description="Which segmentation changed.", examples=["rfm_segment"]
    )
    previous: str | None = Field(
        default=None,
        description="The segment before; null for the first scoring.",
        examples=["loyal"],
    )
    current: str | None = Field(
        default=None,
        description="The segment now; null when it no longer applies.",
        examples=["champions"],
    )
