"""Response bodies of ``/v1/analytics``: what each number counts, in words a retention team uses."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from crm_contracts import Stage


class Period(BaseModel):
    """Days counted, both included (UTC dates)."""

    from_: date = Field(serialization_alias="from", description="The first day, included.")
    to: date = Field(description="The last day, included.")


class StageCount(BaseModel):
    """Customers in one stage."""

    stage: Stage
    customers: int


class StageCountsView(BaseModel):
    """Customers per lifecycle stage at the end of a day."""

    at: date = Field(description="The day counted, at its end (UTC).")
    stages: list[StageCount] = Field(description="Every stage in lifecycle order, zeros included.")
    total: int = Field(description="Every customer known, prospects included.")


class TransitionCountView(BaseModel):
    """Customers who moved from one stage to another in the period."""

    from_stage: Stage | None = Field(description="null: a customer newly known to lifecycle.")
    to_stage: Stage
    customers: int


class TransitionMatrix(BaseModel):
    """The same moves as a grid for a heat map: ``customers[row][column]``."""

    from_stages: list[Stage | None] = Field(
        description="Row labels: null (newly known) first, then every stage."
    )
    to_stages: list[Stage] = Field(description="Column labels: every stage.")
    customers: list[list[int]] = Field(description="Customers moved, zeros included.")


class TransitionsView(BaseModel):
    """Stage moves over a period."""

    period: Period
    transitions: list[TransitionCountView] = Field(
        description="Moves that happened, most customers first."
    )
    total: int = Field(description="Every move in the period (a customer may move twice).")
    matrix: TransitionMatrix


class CohortMonthView(BaseModel):
    """A cohort's buying in one month after its first purchases."""

    month_offset: int = Field(description="Months after the cohort month (0: the cohort month).")
    month: str = Field(description="YYYY-MM.", examples=["2025-03"])
    customers: int = Field(description="Customers of the cohort who bought in this month.")
    share: float | None = Field(
        description="customers / cohort size, 0 to 1; null for an empty cohort."
    )


class CohortView(BaseModel):
    """Customers whose first purchase fell in one month, and how many kept buying."""

    cohort: str = Field(description="The first-purchase month, YYYY-MM.", examples=["2025-01"])
    size: int = Field(description="Customers whose first purchase fell in this month.")
    retention: list[CohortMonthView] = Field(
        description="One entry per month from the cohort month to the current month."
    )


class CohortsView(BaseModel):
    """Cohort retention: one row per first-purchase month."""

    from_month: str
    to_month: str
    through_month: str = Field(description="The last month reported (the current month).")
    cohorts: list[CohortView]


class RetentionRatesView(BaseModel):
    """Retention, churn and repeat purchase over a period.

    Retained customers are buyers still in the relationship: customers in new, active, loyal,
    at_risk, dormant or won_back (not prospects, who never bought, nor churned customers).
    """

    period: Period
    customers_at_start: int = Field(
        description="Retained customers at the end of the day before the period."
    )
    customers_at_end: int = Field(description="Retained customers at the end of its last day.")
    new_buyers: int = Field(description="First purchases in the period (moves into new).")
    churned: int = Field(description="Moves into churned in the period.")
    reactivated: int = Field(
        description="Churned customers who bought again in the period (churned to won_back); "
        "they count in customers_at_end without being in customers_at_start."
    )
    retention_rate: float | None = Field(
        description="(customers_at_end - new_buyers) / customers_at_start: the classic "
        "customer retention rate. Null when nobody was retained at the start."
    )
    churn_rate: float | None = Field(
        description="churned / customers_at_start; null when nobody was retained at the start."
    )
    buyers_at_end: int = Field(description="Customers with one order or more at the end.")
    repeat_buyers_at_end: int = Field(description="Customers with two orders or more at the end.")
    repeat_purchase_rate: float | None = Field(
        description="repeat_buyers_at_end / buyers_at_end; null without buyers."
    )


class WarningOutcomeView(BaseModel):
    """Churn warnings by outcome."""

    open: int = Field(
        description="Still open (open or updated): no purchase, not yet expired. Warnings"
        " withdrawn because the customer objected to profiling are in none of the counts."
    )
    saved: int = Field(description="Closed by a purchase.")
    lost: int = Field(description="Closed by expiry, no purchase since the warning.")
    save_rate: float | None = Field(
        description="saved / (saved + lost); null while no warning is closed."
    )


class TierWarningOutcomeView(WarningOutcomeView):
    """Churn warning outcomes of one value tier."""

    value_tier: str = Field(
        description="strategic_partner, growth, profit, basic, or unknown (no tier when raised)."
    )


class WarningOutcomesView(BaseModel):
    """Churn warning outcomes per value tier (the tier when the warning was last changed)."""

    raised_from: datetime | None = Field(description="Warnings raised from then, included.")
    raised_to: datetime | None = Field(description="Warnings raised before then.")
    tiers: list[TierWarningOutcomeView] = Field(description="Every tier, zeros included.")
    total: WarningOutcomeView


class HistogramView(BaseModel):
    """Customers in equal-width bins: ``counts[i]`` lie between ``edges[i]`` and ``edges[i+1]``."""

    edges: list[float]
    counts: list[int]
    missing: int = Field(description="Customers without the figure (not scored yet).")


class DistributionsView(BaseModel):
    """How the base spreads over predicted 12-month CLV and churn risk."""

    predicted_clv_12m: HistogramView
    churn_risk: HistogramView
