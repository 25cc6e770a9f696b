"""Rule conditions: what a trigger must show for a playbook rule to fire.

Conditions left as ``None`` match anything; a condition on a fact the trigger does not carry
does not match (a rule for ``tiers={"growth"}`` never fires for a customer whose tier is
unknown). ``churn.warning`` triggers match only newly ``open`` warnings by default, so an
``updated`` warning does not message the customer again.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Final

from notification_service.domain.triggers import CHURN_WARNING, Trigger

__all__ = ["NAME_SET_FIELDS", "Conditions"]


@dataclass(frozen=True)
class Conditions:
    """What a trigger must show for a rule to fire; ``None`` means "any"."""

    stages: frozenset[str] | None = None
    previous_stages: frozenset[str] | None = None
    tiers: frozenset[str] | None = None
    grades: frozenset[str] | None = None
    churn_risk_min: float | None = None  # inclusive
    churn_risk_max: float | None = None  # inclusive
    segments: frozenset[str] | None = None  # RFM segment names
    clusters: frozenset[str] | None = None  # K-means segment labels
    recommended_actions: frozenset[str] | None = None
    first_order_only: bool = False
    activity_types: frozenset[str] | None = None  # activity.recorded: e.g. cart_abandoned
    feedback_kinds: frozenset[str] | None = None  # feedback.recorded: complaint ...
    surveys: frozenset[str] | None = None  # feedback.recorded answers: nps, csat
    survey_score_min: int | None = None  # inclusive, 0-10
    survey_score_max: int | None = None  # inclusive, 0-10
    # Applies to churn.warning only. "open" alone: a warning messages once, not on every update.
    warning_statuses: frozenset[str] = frozenset({"open"})
    # Checked when the message is due, not here: see cancelled_by_purchase.
    unless_ordered_since_trigger: bool = False

    def matches(self, trigger: Trigger) -> bool:
        """True when ``trigger`` satisfies every condition that is set."""
        risk = trigger.churn_risk
        return (
            _allows(self.stages, trigger.stage)
            and _allows(self.previous_stages, trigger.previous_stage)
            and _allows(self.tiers, trigger.value_tier)
            and _allows(self.grades, trigger.grade)
            and (self.churn_risk_min is None or (risk is not None and risk >= self.churn_risk_min))
            and (self.churn_risk_max is None or (risk is not None and risk <= self.churn_risk_max))
            and _allows(self.segments, trigger.rfm_segment)
            and _allows(self.clusters, trigger.cluster)
            and _allows(self.recommended_actions, trigger.recommended_action)
            and (not self.first_order_only or trigger.is_first_order is True)
            and _allows(self.activity_types, trigger.activity_type)
            and _allows(self.feedback_kinds, trigger.feedback_kind)
            and _allows(self.surveys, trigger.survey)
            and _within(trigger.survey_score, self.survey_score_min, self.survey_score_max)
            and (
                trigger.event_type != CHURN_WARNING
                or trigger.warning_status in self.warning_statuses
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (sets become sorted lists) that ``rule_documents`` reads back."""
        data: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            data[spec.name] = sorted(value) if isinstance(value, frozenset) else value
        return data


NAME_SET_FIELDS: Final = (
    "stages",
    "previous_stages",
    "tiers",
    "grades",
    "segments",
    "clusters",
    "recommended_actions",
    "activity_types",
    "feedback_kinds",
    "surveys",
)


def _within(value: int | None, low: int | None, high: int | None) -> bool:
    # A bound set on a fact the trigger does not carry does not match, as for _allows.
    if low is None and high is None:
        return True
    return value is not None and (low is None or value >= low) and (high is None or value <= high)


def _allows(allowed: frozenset[str] | None, fact: str | None) -> bool:
    if allowed is None:
        return True
    return fact is not None and str(fact) in allowed
