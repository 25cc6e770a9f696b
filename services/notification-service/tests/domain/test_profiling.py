"""Which rules rest on profiling: a churn-warning trigger or a condition on score facts."""

from __future__ import annotations

from dataclasses import replace

from notification_service.domain.default_playbook import DEFAULT_RULES
from notification_service.domain.playbooks import Conditions
from notification_service.domain.profiling import rests_on_profiling


def test_the_shipped_playbook_splits_into_profiling_and_plain_rules() -> None:
    resting = {rule.rule_id for rule in DEFAULT_RULES if rests_on_profiling(rule, rule.event_type)}
    assert resting == {"high-value-warning-task", "warning-retention-offer"}


def test_a_condition_on_a_score_fact_rests_on_profiling() -> None:
    dormant = next(rule for rule in DEFAULT_RULES if rule.rule_id == "dormant-wake-up")
    assert not rests_on_profiling(dormant, dormant.event_type)
    by_tier = replace(dormant, conditions=Conditions(tiers=frozenset({"growth"})))
    assert rests_on_profiling(by_tier, by_tier.event_type)
    by_risk = replace(dormant, conditions=Conditions(churn_risk_min=0.5))
    assert rests_on_profiling(by_risk, by_risk.event_type)
