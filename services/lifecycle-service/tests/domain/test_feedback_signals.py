"""Feedback signals: a complaint surge and a valuable detractor warn, and stay named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_contracts import Stage, ValueTier
from lifecycle_service.domain.churn_warnings import (
    CHURN_RISK_ABOVE_THRESHOLD,
    COMPLAINT_SURGE,
    DETRACTOR_ANSWER,
    SPEND_DROPPED,
    close_on_purchase,
    feedback_signals,
    raise_or_update,
)
from lifecycle_service.domain.nps import NpsTally, tally
from lifecycle_service.domain.rules import StageRules, validate_rules
from lifecycle_service.domain.stages import CustomerLifecycle
from lifecycle_service.domain.warning_policy import warning_changes

RULES = StageRules()
START = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def customer(*, churn_risk: float = 0.1, tier: ValueTier | None = ValueTier.GROWTH):
    """An active repeat buyer with steady spend (no state signal unless the risk is high)."""
    return CustomerLifecycle(
        customer_id="c-1",
        stage=Stage.ACTIVE,
        stage_since=day(0),
        first_purchase_at=day(0),
        last_purchase_at=day(100),
        order_count=5,
        average_order_value=100.0,
        last_order_value=100.0,
        expected_interpurchase_days=30.0,
        churn_risk=churn_risk,
        value_tier=tier,
    )


@pytest.mark.parametrize(("complaints", "signals"), [(1, []), (2, [COMPLAINT_SURGE])])
def test_a_second_complaint_within_the_window_is_a_surge(complaints, signals):
    found = feedback_signals(customer(), RULES, complaints_in_window=complaints, nps_answer=None)
    assert found == signals


def test_the_surge_count_is_a_rule():
    rules = StageRules(warning_complaint_surge_count=3)
    assert feedback_signals(customer(), rules, complaints_in_window=2, nps_answer=None) == []


@pytest.mark.parametrize(
    ("tier", "answer", "warned"),
    [
        (ValueTier.STRATEGIC_PARTNER, 6, True),
        (ValueTier.GROWTH, 0, True),
        (ValueTier.PROFIT, 3, True),
        (ValueTier.GROWTH, 7, False),  # a passive
        (ValueTier.BASIC, 2, False),  # not a valuable tier
        (None, 2, False),  # tier unknown yet
    ],
)
def test_a_detractor_answer_warns_for_valuable_tiers(tier, answer, warned):
    found = feedback_signals(customer(tier=tier), RULES, complaints_in_window=0, nps_answer=answer)
    assert found == ([DETRACTOR_ANSWER] if warned else [])


def test_feedback_and_state_signals_are_named_together():
    state = customer(churn_risk=0.65)  # above the growth tier's 0.6
    [opened] = warning_changes(None, state, RULES, day(110), "w-1", [DETRACTOR_ANSWER])
    assert opened.reasons == (CHURN_RISK_ABOVE_THRESHOLD, DETRACTOR_ANSWER)


def test_an_open_warning_keeps_its_feedback_signals_through_later_reviews():
    opened = raise_or_update(None, customer(), [COMPLAINT_SURGE], day(110), "w-1")
    assert opened is not None

    # A later score or sweep sees the state signals only: the surge stays named.
    updated = raise_or_update(opened, customer(), [SPEND_DROPPED], day(120), "w-2")
    assert updated is not None
    assert updated.reasons == (COMPLAINT_SURGE, SPEND_DROPPED)
    assert raise_or_update(updated, customer(), [SPEND_DROPPED], day(121), "w-3") is None

    # Once closed, a new warning starts from the signals of its own moment.
    saved = close_on_purchase(updated, day(130))
    reopened = raise_or_update(saved, customer(), [SPEND_DROPPED], day(140), "w-4")
    assert reopened is not None
    assert reopened.reasons == (SPEND_DROPPED,)


def test_feedback_rules_are_validated_and_round_trip():
    rules = StageRules(
        warning_complaint_surge_count=0,
        warning_complaint_window_days=0,
        warning_detractor_tiers=frozenset({"platinum"}),
    )
    fields = {problem.field for problem in validate_rules(rules)}
    assert {
        "warning_complaint_surge_count",
        "warning_complaint_window_days",
        "warning_detractor_tiers",
    } <= fields
    assert StageRules.from_dict(StageRules().to_dict()) == StageRules()


def test_nps_is_promoters_minus_detractors_over_answers():
    figures = tally([(10, 5), (9, 1), (8, 2), (7, 0), (6, 1), (0, 1)])
    assert figures == NpsTally(promoters=6, passives=2, detractors=2)
    assert figures.answers == 10
    assert figures.nps == 40.0
    assert NpsTally().nps is None
    assert tally([(3, 2)]).nps == -100.0
