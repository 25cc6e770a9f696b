"""Stage rules: the numbers that move customers between lifecycle stages, kept as data.

Rules are read and replaced through the API, so they live in one frozen value,
:class:`StageRules`, with a JSON round trip (:meth:`StageRules.to_dict`,
:meth:`StageRules.from_dict`; the shape is ``rules_document``) and a validator
(:func:`validate_rules`) that names every problem by its field path instead of failing on the
first one.

Two kinds of threshold appear:

- *enter when above* (:class:`Band`): silence measured in the customer's rhythm, and the
  churn risk that makes a customer ``at_risk``. A customer enters when the measure rises
  strictly above ``enter`` and leaves only when it falls strictly below ``leave``; ``leave <=
  enter`` so a measure hovering between the two keeps the stage it has (hysteresis).
- *enter when below*: loyalty asks for a churn risk at most ``loyal_enter_max_churn_risk``
  and is lost only above ``loyal_exit_churn_risk``, so ``enter <= exit``.

The fixed fall-backs in days (``at_risk_from_days`` ...) have no leave value: silence in days
only grows until a purchase, and a purchase moves the customer anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from typing import Any, Final

from crm_contracts import Grade, ValueTier
from crm_shared.rule_documents import RuleProblem, parse_rule_document
from lifecycle_service.domain.rules_document import BandDocument, StageRulesDocument

__all__ = [
    "UNKNOWN_TIER",
    "Band",
    "StageRules",
    "validate_rules",
]

# The key of the churn-warning threshold used when a customer has no value tier yet.
UNKNOWN_TIER: Final = "unknown"


@dataclass(frozen=True)
class Band:
    """An *enter when above* threshold: enter above ``enter``, leave below ``leave``."""

    enter: float
    leave: float


def _default_warning_thresholds() -> dict[str, float]:
    # Valuable customers are warned earlier: losing one costs more than a false alarm.
    return {
        ValueTier.STRATEGIC_PARTNER.value: 0.5,
        ValueTier.GROWTH.value: 0.6,
        ValueTier.PROFIT.value: 0.6,
        ValueTier.BASIC.value: 0.7,
        UNKNOWN_TIER: 0.7,
    }


@dataclass(frozen=True)
class StageRules:
    """Every threshold of the stage machine and of churn warnings (defaults: common practice)."""

    # A first purchase makes a customer ``new`` for this many days, whatever else happens.
    new_days: int = 90
    # Fall-backs for customers without a usable rhythm: silence in days from which they decline.
    at_risk_from_days: int = 91
    dormant_from_days: int = 181
    churned_from_days: int = 301
    # A rhythm estimated from fewer orders than this is not trusted; the fall-backs apply.
    min_orders_for_rhythm: int = 2
    # Silence as a multiple of the customer's expected days between purchases.
    at_risk_rhythm: Band = Band(enter=2.0, leave=1.5)
    dormant_rhythm: Band = Band(enter=4.0, leave=3.0)
    churned_rhythm: Band = Band(enter=6.0, leave=5.0)
    # A churn risk (from score.updated) that makes an active or loyal customer ``at_risk``.
    at_risk_churn_risk: Band = Band(enter=0.75, leave=0.6)
    # Loyalty: a repeat buyer of high value with a low churn risk.
    loyal_min_orders: int = 3
    loyal_tiers: frozenset[str] = frozenset(
        {ValueTier.STRATEGIC_PARTNER.value, ValueTier.PROFIT.value}
    )
    loyal_grades: frozenset[str] = frozenset({Grade.VIP.value, Grade.HIGH.value})
    loyal_enter_max_churn_risk: float = 0.3
    loyal_exit_churn_risk: float = 0.45
    # A won-back customer counts as ``active`` (or ``loyal``) again after this many days.
    won_back_settling_days: int = 60
    # Churn warnings.
    warning_churn_risk_by_tier: Mapping[str, float] = field(
        default_factory=_default_warning_thresholds
    )
    warning_spend_drop_factor: float = 0.5
    warning_silence_factor: float = 1.5
    warning_expiry_days: int = 90
    # Feedback: this many complaints within the window warn (two in a month is a surge for
    # most shops: one complaint is service, a second one is a relationship in trouble) ...
    warning_complaint_surge_count: int = 2
    warning_complaint_window_days: int = 30
    # ... and an NPS detractor answer (0-6) warns for customers of these tiers.
    warning_detractor_tiers: frozenset[str] = frozenset(
        {ValueTier.STRATEGIC_PARTNER.value, ValueTier.GROWTH.value, ValueTier.PROFIT.value}
    )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (sets become sorted lists) that :meth:`from_dict` reads back."""
        data = asdict(self)
        data["loyal_tiers"] = sorted(self.loyal_tiers)
        data["loyal_grades"] = sorted(self.loyal_grades)
        data["warning_churn_risk_by_tier"] = dict(sorted(self.warning_churn_risk_by_tier.items()))
        data["warning_detractor_tiers"] = sorted(self.warning_detractor_tiers)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageRules:
        """Read rules from :meth:`to_dict` output; missing fields keep their defaults.

        Unknown fields and values of the wrong shape raise ``InvalidRuleDocument``
        (``rules_document``). Ranges are not checked here: call :func:`validate_rules`.
        """
        document = parse_rule_document(StageRulesDocument, data)
        values: dict[str, Any] = {}
        for name in document.model_fields_set:
            value = getattr(document, name)
            values[name] = (
                Band(value.enter, value.leave) if isinstance(value, BandDocument) else value
            )
        return replace(cls(), **values)


def validate_rules(rules: StageRules) -> list[RuleProblem]:
    """Every problem with ``rules``; an empty list means the rules can go live.

    Checked: positive day counts; fall-back ranges ordered and non-overlapping; rhythm bands
    ordered, each with ``leave <= enter`` and hysteresis bands that do not overlap the band
    below; probabilities within [0, 1]; loyalty enter/exit consistent and not swallowed by the
    churn-risk ``at_risk`` rule; a warning threshold for every value tier; and every stage
    reachable (loyal needs a tier or grade to qualify, a repeat-buyer order count, and a churn
    risk range below the ``at_risk`` one).
    """
    problems: list[RuleProblem] = []

    def problem(path: str, message: str) -> None:
        problems.append(RuleProblem(path, message))

    for name in (
        "new_days",
        "at_risk_from_days",
        "dormant_from_days",
        "churned_from_days",
        "won_back_settling_days",
        "warning_expiry_days",
        "warning_complaint_window_days",
    ):
        if getattr(rules, name) <= 0:
            problem(name, "must be a positive number of days")
    if not rules.at_risk_from_days < rules.dormant_from_days:
        problem("dormant_from_days", "must be after at_risk_from_days, or dormant overlaps at_risk")
    if not rules.dormant_from_days < rules.churned_from_days:
        problem("churned_from_days", "must be after dormant_from_days, or churned overlaps dormant")
    if rules.min_orders_for_rhythm < 2:
        problem("min_orders_for_rhythm", "a rhythm needs at least 2 orders")

    bands = (
        ("at_risk_rhythm", rules.at_risk_rhythm),
        ("dormant_rhythm", rules.dormant_rhythm),
        ("churned_rhythm", rules.churned_rhythm),
    )
    for name, band in bands:
        if band.leave <= 0:
            problem(f"{name}.leave", "must be a positive multiple of the rhythm")
        if band.leave > band.enter:
            problem(f"{name}.leave", "must not exceed enter, or the stage flaps")
    for (lower_name, lower), (name, band) in pairwise(bands):
        if not lower.enter < band.enter:
            problem(
                f"{name}.enter", f"must be above {lower_name}.enter, or the stage is unreachable"
            )
        if band.leave < lower.enter:
            problem(f"{name}.leave", f"must be at least {lower_name}.enter (overlapping bands)")

    _check_probability(problem, "at_risk_churn_risk.enter", rules.at_risk_churn_risk.enter)
    _check_probability(problem, "at_risk_churn_risk.leave", rules.at_risk_churn_risk.leave)
    if rules.at_risk_churn_risk.leave > rules.at_risk_churn_risk.enter:
        problem("at_risk_churn_risk.leave", "must not exceed enter, or the stage flaps")

    _check_probability(problem, "loyal_enter_max_churn_risk", rules.loyal_enter_max_churn_risk)
    _check_probability(problem, "loyal_exit_churn_risk", rules.loyal_exit_churn_risk)
    if rules.loyal_enter_max_churn_risk > rules.loyal_exit_churn_risk:
        problem("loyal_exit_churn_risk", "must be at least loyal_enter_max_churn_risk")
    if rules.loyal_enter_max_churn_risk >= rules.at_risk_churn_risk.enter:
        problem(
            "loyal_enter_max_churn_risk",
            "must be below at_risk_churn_risk.enter, or at_risk overlaps loyal",
        )
    if rules.loyal_min_orders < 2:
        problem("loyal_min_orders", "loyal customers are repeat buyers: at least 2 orders")
    if not rules.loyal_tiers and not rules.loyal_grades:
        problem("loyal_tiers", "no tier or grade qualifies, so loyal is unreachable")
    for name, values, allowed in (
        ("loyal_tiers", rules.loyal_tiers, {t.value for t in ValueTier}),
        ("loyal_grades", rules.loyal_grades, {g.value for g in Grade}),
    ):
        for unknown in sorted(values - allowed):
            problem(name, f"unknown name {unknown!r}")

    expected_tiers = {t.value for t in ValueTier} | {UNKNOWN_TIER}
    for missing in sorted(expected_tiers - set(rules.warning_churn_risk_by_tier)):
        problem(f"warning_churn_risk_by_tier.{missing}", "missing")
    for tier, threshold in sorted(rules.warning_churn_risk_by_tier.items()):
        path = f"warning_churn_risk_by_tier.{tier}"
        if tier not in expected_tiers:
            problem(path, "unknown value tier")
        _check_probability(problem, path, threshold)
    if not 0.0 < rules.warning_spend_drop_factor < 1.0:
        problem("warning_spend_drop_factor", "must be between 0 and 1 (a share of the average)")
    if rules.warning_silence_factor <= 0:
        problem("warning_silence_factor", "must be a positive multiple of the rhythm")
    if rules.warning_complaint_surge_count < 1:
        problem("warning_complaint_surge_count", "must be at least 1 complaint")
    for unknown in sorted(rules.warning_detractor_tiers - {t.value for t in ValueTier}):
        problem("warning_detractor_tiers", f"unknown value tier {unknown!r}")
    return problems


def _check_probability(report: Callable[[str, str], None], path: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        report(path, "must be between 0 and 1")
