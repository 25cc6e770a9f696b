"""Response body of ``GET /v1/analytics/effects``: each rule's treated and held-out groups."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from crm_contracts import Money

DEFINITIONS: Final = {
    "groups": "Customers the rule fired for in the period and assigned a group by the stable"
    " hash of rule and customer: treated (messages decided; some may still have been"
    " suppressed for consent, contact or the cap) or held out (suppressed with reason holdout)."
    " Compared as assigned (intention to treat); each customer counts once, from the first"
    " trigger in the period.",
    "window": "From just after the moment the rule wanted its message sent (the trigger's"
    " time plus the rule's delay) to window_days later; the period selects by trigger time."
    " Only customers whose window has closed are counted, the others are pending.",
    "repurchase": "At least one order placed in the window that was not cancelled and kept"
    " money after refunds.",
    "revenue": "Order totals in the window less refunds; cancelled orders count 0.",
    "churn_warnings": "For rules triggered by churn.warning: saved when the customer placed"
    " a repurchase in the window, lost otherwise.",
    "uplift": "Treated minus held out (absolute) and treated / held out - 1 (relative), with"
    " a 95% confidence interval: Newcombe's score interval and the log risk ratio for the"
    " repurchase rate, Welch's t interval and the delta method for revenue per customer.",
}


class EffectPeriod(BaseModel):
    """The triggers counted (UTC days, both included) and the window after each."""

    from_: date = Field(serialization_alias="from", description="First trigger day, included.")
    to: date = Field(description="Last trigger day, included.")
    window_days: int = Field(description="Days after the trigger that count.")
    as_of: datetime = Field(description="When the report was computed: windows closed by then.")


class IntervalView(BaseModel):
    """An estimate with its 95% confidence interval."""

    estimate: float
    low: float
    high: float


class MoneyIntervalView(BaseModel):
    """A money estimate with its 95% confidence interval, in the accounting currency."""

    estimate: Decimal
    low: Decimal
    high: Decimal
    currency: str


class RateUpliftView(BaseModel):
    """Treated minus held-out repurchase rate."""

    absolute: IntervalView = Field(description="In rate points (0.05 = 5 percentage points).")
    relative: IntervalView | None = Field(
        description="Treated / held out - 1; null when either group has no repurchase."
    )
    p_value: float | None = Field(description="Two-sided, of no difference.")


class RevenueUpliftView(BaseModel):
    """Treated minus held-out revenue per customer."""

    absolute: MoneyIntervalView
    relative: IntervalView | None = Field(
        description="Treated / held out - 1; null when either group spent nothing."
    )
    p_value: float | None = Field(description="Two-sided, of no difference (Welch's t-test).")


class WarningOutcomesView(BaseModel):
    """Churn warnings the group closed within the window."""

    saved: int
    lost: int


class GroupView(BaseModel):
    """One group's customers with a closed window and what they did in it."""

    customers: int
    repurchased: int
    repurchase_rate: float | None = Field(description="Null for an empty group.")
    revenue: Money
    revenue_per_customer: Money | None = Field(description="Null for an empty group.")
    churn_warnings: WarningOutcomesView | None = Field(
        description="Only for rules triggered by churn.warning."
    )


class RuleEffectView(BaseModel):
    """What one rule achieved against its control group."""

    rule_id: str
    holdout_share: float | None = Field(
        description="The rule's hold-out share now (null: the rule has been deleted)."
    )
    trigger_types: list[str]
    treated: GroupView
    held_out: GroupView
    pending_customers: int = Field(description="Assigned, but their window is still open.")
    repurchase_uplift: RateUpliftView | None = Field(
        description="Null until both groups have a customer with a closed window."
    )
    revenue_per_customer_uplift: RevenueUpliftView | None = Field(
        description="Null until both groups have two customers with a closed window."
    )


_EXAMPLE_GROUP: Any = {
    "customers": 1812,
    "repurchased": 417,
    "repurchase_rate": 0.2301,
    "revenue": {"amount": "18236.40", "currency": "USD"},
    "revenue_per_customer": {"amount": "10.06", "currency": "USD"},
    "churn_warnings": {"saved": 417, "lost": 1395},
}


_EXAMPLE_REPORT: Any = {
    "period": {
        "from": "1997-01-01",
        "to": "1997-09-30",
        "window_days": 30,
        "as_of": "2026-12-07T09:00:00Z",
    },
    "definitions": DEFINITIONS,
    "rules": [
        {
            "rule_id": "warning-retention-offer",
            "holdout_share": 0.1,
            "trigger_types": ["churn.warning"],
            "treated": _EXAMPLE_GROUP,
            "held_out": {
                "customers": 203,
                "repurchased": 31,
                "repurchase_rate": 0.1527,
                "revenue": {"amount": "1302.11", "currency": "USD"},
                "revenue_per_customer": {"amount": "6.41", "currency": "USD"},
                "churn_warnings": {"saved": 31, "lost": 172},
            },
            "pending_customers": 0,
            "repurchase_uplift": {
                "absolute": {"estimate": 0.0774, "low": 0.0227, "high": 0.1221},
                "relative": {"estimate": 0.507, "low": 0.081, "high": 1.101},
                "p_value": 0.0107,
            },
            "revenue_per_customer_uplift": {
                "absolute": {
                    "estimate": "3.65",
                    "low": "0.98",
                    "high": "6.32",
                    "currency": "USD",
                },
                "relative": {"estimate": 0.569, "low": 0.09, "high": 1.26},
                "p_value": 0.0075,
            },
        }
    ],
}


class EffectReport(BaseModel):
    """Each rule's treated against held-out customers over a period."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE_REPORT]})

    period: EffectPeriod
    definitions: dict[str, str] = Field(description="How every figure is counted.")
    rules: list[RuleEffectView] = Field(description="By rule id; rules with no assignment absent.")
