"""Stage rules as data: the JSON round trip and validation that names every problem."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from crm_shared.rule_documents import InvalidRuleDocument, RuleProblem
from lifecycle_service.domain.rules import Band, StageRules, validate_rules


def problem_fields(rules: StageRules) -> set[str]:
    return {problem.field for problem in validate_rules(rules)}


def test_default_rules_are_valid():
    assert validate_rules(StageRules()) == []


def test_rules_survive_a_json_round_trip():
    rules = replace(
        StageRules(),
        new_days=60,
        dormant_rhythm=Band(enter=4.5, leave=3.5),
        loyal_grades=frozenset({"vip"}),
        warning_churn_risk_by_tier={**StageRules().warning_churn_risk_by_tier, "basic": 0.8},
    )

    assert StageRules.from_dict(json.loads(json.dumps(rules.to_dict()))) == rules


def test_missing_fields_keep_their_defaults():
    assert StageRules.from_dict({"new_days": 30}) == replace(StageRules(), new_days=30)


def test_unknown_fields_and_wrong_shapes_are_all_reported():
    with pytest.raises(InvalidRuleDocument) as raised:
        StageRules.from_dict(
            {"new_dayz": 30, "at_risk_rhythm": {"enter": 2.0}, "new_days": "ninety"}
        )

    # A band's missing threshold is named, as the range checks name it.
    assert {p.field for p in raised.value.problems} == {
        "new_dayz",
        "at_risk_rhythm.leave",
        "new_days",
    }


def test_overlapping_fall_back_ranges_are_reported_by_field():
    rules = replace(StageRules(), dormant_from_days=300, churned_from_days=250)

    assert problem_fields(rules) == {"churned_from_days"}


def test_a_leave_threshold_above_its_enter_threshold_is_reported():
    rules = replace(StageRules(), at_risk_rhythm=Band(enter=2.0, leave=2.5))

    assert RuleProblem("at_risk_rhythm.leave", "must not exceed enter, or the stage flaps") in (
        validate_rules(rules)
    )


def test_rhythm_bands_out_of_order_make_a_stage_unreachable():
    rules = replace(StageRules(), dormant_rhythm=Band(enter=1.8, leave=1.6))

    assert "dormant_rhythm.enter" in problem_fields(rules)


def test_hysteresis_bands_must_not_overlap_the_band_below():
    rules = replace(StageRules(), dormant_rhythm=Band(enter=4.0, leave=1.8))

    assert problem_fields(rules) == {"dormant_rhythm.leave"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"at_risk_churn_risk": Band(enter=1.2, leave=0.6)}, "at_risk_churn_risk.enter"),
        ({"loyal_exit_churn_risk": -0.1}, "loyal_exit_churn_risk"),
        ({"warning_spend_drop_factor": 1.0}, "warning_spend_drop_factor"),
        ({"new_days": 0}, "new_days"),
        ({"warning_expiry_days": -5}, "warning_expiry_days"),
        ({"won_back_settling_days": 0}, "won_back_settling_days"),
    ],
)
def test_out_of_range_values_are_reported(change, field):
    assert field in problem_fields(replace(StageRules(), **change))


def test_loyal_exit_must_not_be_stricter_than_loyal_entry():
    rules = replace(StageRules(), loyal_enter_max_churn_risk=0.5, loyal_exit_churn_risk=0.4)

    assert "loyal_exit_churn_risk" in problem_fields(rules)


def test_loyal_is_unreachable_without_a_qualifying_tier_or_grade():
    rules = replace(StageRules(), loyal_tiers=frozenset(), loyal_grades=frozenset())

    assert problem_fields(rules) == {"loyal_tiers"}


def test_loyal_is_unreachable_when_at_risk_takes_every_churn_risk_it_accepts():
    rules = replace(StageRules(), at_risk_churn_risk=Band(enter=0.3, leave=0.2))

    assert "loyal_enter_max_churn_risk" in problem_fields(rules)


def test_every_value_tier_needs_a_warning_threshold():
    thresholds = dict(StageRules().warning_churn_risk_by_tier)
    del thresholds["growth"]

    assert problem_fields(replace(StageRules(), warning_churn_risk_by_tier=thresholds)) == {
        "warning_churn_risk_by_tier.growth"
    }
