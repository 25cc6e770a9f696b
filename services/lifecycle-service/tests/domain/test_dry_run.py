"""The rules dry run: who would move where, and how many warnings would fire."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_contracts import Stage
from crm_shared.rule_documents import InvalidRuleDocument
from lifecycle_service.domain.dry_run import dry_run
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.domain.stages import CustomerLifecycle

RULES = StageRules()
NOW = datetime(2025, 12, 31, tzinfo=UTC)


def one_time_buyer(silent_days: int, stage: Stage, customer_id: str) -> CustomerLifecycle:
    """A customer with a single order ``silent_days`` before NOW, stored in ``stage``."""
    bought = NOW - timedelta(days=silent_days)
    return CustomerLifecycle(
        customer_id=customer_id,
        stage=stage,
        stage_since=bought,
        first_purchase_at=bought,
        last_purchase_at=bought,
        order_count=1,
        average_order_value=50.0,
        last_order_value=50.0,
        churn_risk=0.65,
    )


def base() -> list[CustomerLifecycle]:
    """Customers already in the stage the current rules give them."""
    return [
        one_time_buyer(100, Stage.AT_RISK, "a"),
        one_time_buyer(120, Stage.AT_RISK, "b"),
        one_time_buyer(200, Stage.DORMANT, "c"),
        one_time_buyer(30, Stage.NEW, "d"),
    ]


def test_an_up_to_date_base_does_not_move_under_the_current_rules():
    report = dry_run(base(), RULES, RULES, NOW)

    assert report.customers == 4
    assert report.current_moves == {} == report.candidate_moves


def test_candidate_rules_report_moves_from_stage_to_stage():
    stricter = replace(RULES, at_risk_from_days=60, dormant_from_days=110)

    report = dry_run(base(), RULES, stricter, NOW)

    assert report.candidate_moves == {(Stage.AT_RISK, Stage.DORMANT): 1}
    assert report.candidate_movers == 1
    assert report.current_moves == {}


def test_candidate_rules_report_how_many_warnings_would_fire():
    thresholds = {**RULES.warning_churn_risk_by_tier, "unknown": 0.6}

    report = dry_run(base(), RULES, replace(RULES, warning_churn_risk_by_tier=thresholds), NOW)

    # Only warned stages count: the two at_risk customers, not the dormant or the new one.
    assert (report.current_warnings, report.candidate_warnings) == (0, 2)


def test_warnings_follow_the_stage_the_candidate_rules_give():
    lenient = {**RULES.warning_churn_risk_by_tier, "unknown": 0.6}
    candidate = replace(RULES, warning_churn_risk_by_tier=lenient, dormant_from_days=250)

    report = dry_run(base(), RULES, candidate, NOW)

    # Under the candidate the dormant customer is at_risk again, so warned.
    assert report.candidate_moves == {(Stage.DORMANT, Stage.AT_RISK): 1}
    assert report.candidate_warnings == 3


def test_the_dry_run_leaves_the_states_as_they_were():
    states = base()

    dry_run(states, RULES, replace(RULES, at_risk_from_days=20), NOW)

    assert states == base()


def test_invalid_candidate_rules_are_refused():
    with pytest.raises(InvalidRuleDocument, match="churned_from_days"):
        dry_run(base(), RULES, replace(RULES, churned_from_days=100), NOW)
