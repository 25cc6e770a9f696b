"""The stage machine: every transition, hysteresis, and sweeps that are safe to repeat."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_contracts import Grade, Stage, ValueTier
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.domain.stages import (
    SWEEP_CAUSE,
    CustomerLifecycle,
    Transition,
    new_prospect,
    on_order,
    on_scores,
    on_sweep,
    stage_for,
)

RULES = StageRules()
START = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    """``n`` days after the start of every test's calendar."""
    return START + timedelta(days=n)


def customer(
    stage: Stage = Stage.ACTIVE,
    *,
    first_day: float = 0,
    last_day: float = 200,
    orders: int = 5,
    rhythm: float | None = 40.0,
    churn_risk: float | None = 0.2,
    tier: ValueTier | None = ValueTier.GROWTH,
    grade: Grade | None = Grade.MEDIUM,
    since_day: float | None = None,
) -> CustomerLifecycle:
    """A buyer in ``stage`` with scores; defaults describe an ordinary, healthy active customer."""
    return CustomerLifecycle(
        customer_id="c-1",
        stage=stage,
        stage_since=day(last_day if since_day is None else since_day),
        first_purchase_at=day(first_day),
        last_purchase_at=day(last_day),
        order_count=orders,
        average_order_value=100.0,
        last_order_value=100.0,
        expected_interpurchase_days=rhythm,
        churn_risk=churn_risk,
        value_tier=tier,
        grade=grade,
        scores_as_of=day(last_day),
    )


def scores(
    state: CustomerLifecycle,
    at_day: float,
    *,
    churn_risk: float | None = None,
    tier: ValueTier | None = None,
    grade: Grade | None = None,
    rhythm: float | None = None,
) -> tuple[CustomerLifecycle, Transition | None]:
    """Apply a score.updated that changes only what is given (the rest stays as it was)."""
    return on_scores(
        state,
        as_of=day(at_day),
        churn_risk=state.churn_risk if churn_risk is None else churn_risk,
        value_tier=state.value_tier if tier is None else tier,
        grade=state.grade if grade is None else grade,
        expected_interpurchase_days=state.expected_interpurchase_days if rhythm is None else rhythm,
        cause_event_id=f"score-{at_day}",
        rules=RULES,
    )


def loyal_candidate(churn_risk: float = 0.2) -> CustomerLifecycle:
    """An active repeat buyer of high value; qualifies for loyal while the churn risk is low."""
    return customer(tier=ValueTier.PROFIT, grade=Grade.HIGH, churn_risk=churn_risk)


# --- prospect and new -------------------------------------------------------------------


def test_a_known_customer_starts_as_a_prospect_with_no_previous_stage():
    state, transition = new_prospect("c-1", day(0), "evt-created")

    assert state.stage is Stage.PROSPECT
    assert transition.previous_stage is None
    assert transition.stage is Stage.PROSPECT
    assert transition.cause == "evt-created"


def test_first_purchase_makes_a_prospect_new_and_records_the_order():
    prospect, _ = new_prospect("c-1", day(0), "evt-created")

    state, transition = on_order(prospect, day(3), 80.0, "evt-order-1", RULES)

    assert state.stage is Stage.NEW
    assert (state.order_count, state.first_purchase_at, state.average_order_value) == (
        1,
        day(3),
        80.0,
    )
    assert transition is not None
    assert (transition.previous_stage, transition.at, transition.cause) == (
        Stage.PROSPECT,
        day(3),
        "evt-order-1",
    )
    assert transition.reason == "first purchase"


def test_a_prospect_stays_a_prospect_through_sweeps_and_scores():
    prospect, _ = new_prospect("c-1", day(0), "evt-created")

    assert on_sweep(prospect, day(400), RULES) == (prospect, None)
    assert stage_for(prospect, day(400), RULES).stage is Stage.PROSPECT


def test_a_second_order_inside_the_new_window_keeps_the_customer_new():
    state = customer(Stage.NEW, first_day=0, last_day=0, orders=1, rhythm=None)

    state, transition = on_order(state, day(20), 50.0, "evt-order-2", RULES)

    assert transition is None
    assert state.stage is Stage.NEW
    assert state.average_order_value == pytest.approx(75.0)


def test_new_customer_is_protected_from_scores_during_the_new_window():
    state = customer(Stage.NEW, first_day=0, last_day=10, orders=2)

    state, transition = scores(state, 30, churn_risk=0.95)

    assert transition is None
    assert state.stage is Stage.NEW


def test_new_repeat_buyer_becomes_active_when_the_new_window_ends():
    state = customer(Stage.NEW, first_day=0, last_day=70, orders=3, rhythm=30.0)

    still_new, none = on_sweep(state, day(89), RULES)
    active, transition = on_sweep(state, day(90), RULES)

    assert (still_new.stage, none) == (Stage.NEW, None)
    assert active.stage is Stage.ACTIVE
    assert transition is not None
    assert (transition.previous_stage, transition.cause) == (Stage.NEW, SWEEP_CAUSE)


def test_one_time_buyer_goes_from_new_to_at_risk_on_the_fixed_fall_back():
    state = customer(Stage.NEW, first_day=0, last_day=0, orders=1, rhythm=None, churn_risk=None)

    at_risk, transition = on_sweep(state, day(91), RULES)

    assert at_risk.stage is Stage.AT_RISK
    assert transition is not None
    assert "fixed fall-back" in transition.reason


def test_valuable_new_customer_becomes_loyal_when_the_new_window_ends():
    state = replace(loyal_candidate(), stage=Stage.NEW, first_purchase_at=day(0))

    loyal, _ = on_sweep(state, day(200), RULES)

    assert loyal.stage is Stage.LOYAL


# --- active and loyal -------------------------------------------------------------------


def test_active_customer_becomes_loyal_when_scores_qualify():
    state = customer(churn_risk=0.25)

    loyal, transition = scores(state, 201, tier=ValueTier.STRATEGIC_PARTNER)

    assert loyal.stage is Stage.LOYAL
    assert transition is not None
    assert "3 orders" not in transition.reason  # the reason states the real count
    assert "5 orders" in transition.reason


def test_loyal_customer_becomes_active_when_churn_risk_passes_the_exit_threshold():
    loyal = replace(loyal_candidate(), stage=Stage.LOYAL)

    active, transition = scores(loyal, 201, churn_risk=0.5)

    assert active.stage is Stage.ACTIVE
    assert transition is not None
    assert transition.reason.startswith("no longer loyal")


def test_loyal_customer_becomes_active_when_tier_and_grade_drop():
    loyal = replace(loyal_candidate(), stage=Stage.LOYAL)

    active, _ = scores(loyal, 201, tier=ValueTier.BASIC, grade=Grade.LOW)

    assert active.stage is Stage.ACTIVE


def test_loyalty_hovering_between_enter_and_exit_thresholds_does_not_flap():
    """Entry needs risk <= 0.30, exit needs risk > 0.45: wobbling in between changes nothing."""
    state = loyal_candidate(churn_risk=0.35)
    transitions = []
    for n, risk in enumerate([0.28, 0.40, 0.32, 0.44, 0.31, 0.45, 0.29]):
        state, transition = scores(state, 201 + n, churn_risk=risk)
        transitions.append(transition)

    moved = [t for t in transitions if t is not None]
    assert [t.stage for t in moved] == [Stage.LOYAL]
    assert state.stage is Stage.LOYAL


def test_an_active_customer_just_above_the_loyal_entry_risk_stays_active():
    state = loyal_candidate(churn_risk=0.5)

    state, transition = scores(state, 201, churn_risk=0.31)

    assert (state.stage, transition) == (Stage.ACTIVE, None)


def test_an_order_keeps_an_active_customer_active():
    state = customer()

    state, transition = on_order(state, day(230), 120.0, "evt-order", RULES)

    assert (state.stage, transition) == (Stage.ACTIVE, None)
    assert state.last_purchase_at == day(230)


# --- decline by silence -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "silent_days", "expected"),
    [
        (Stage.ACTIVE, 80, Stage.ACTIVE),  # exactly 2x the rhythm is not above it
        (Stage.ACTIVE, 81, Stage.AT_RISK),
        (Stage.LOYAL, 81, Stage.AT_RISK),
        (Stage.AT_RISK, 161, Stage.DORMANT),
        (Stage.DORMANT, 241, Stage.CHURNED),
        (Stage.ACTIVE, 241, Stage.CHURNED),  # a long gap between sweeps skips the stages between
    ],
)
def test_silence_against_the_customers_rhythm_moves_them_down(stage, silent_days, expected):
    state = customer(stage, last_day=200, rhythm=40.0, churn_risk=0.1)

    moved, _ = on_sweep(state, day(200 + silent_days), RULES)

    assert moved.stage is expected


@pytest.mark.parametrize(
    ("silent_days", "expected"),
    [
        (90, Stage.ACTIVE),
        (91, Stage.AT_RISK),
        (180, Stage.AT_RISK),
        (181, Stage.DORMANT),
        (300, Stage.DORMANT),
        (301, Stage.CHURNED),
    ],
)
def test_customers_without_a_rhythm_use_the_fixed_fall_backs(silent_days, expected):
    state = customer(last_day=200, rhythm=None, churn_risk=None)

    moved, _ = on_sweep(state, day(200 + silent_days), RULES)

    assert moved.stage is expected


def test_a_rhythm_backed_by_too_few_orders_is_not_trusted():
    state = customer(orders=1, last_day=200, rhythm=10.0, churn_risk=None)

    moved, _ = on_sweep(state, day(260), RULES)  # 6x the rhythm, but only 60 days

    assert moved.stage is Stage.ACTIVE


def test_a_longer_rhythm_moves_a_dormant_customer_back_to_at_risk():
    # Silent 140 days: 3.5x a 40-day rhythm (dormant was entered above 4x, so it stays);
    # re-estimated at 70 days it is 2x, below dormant's leave (3x) and above at_risk's enter.
    dormant = customer(Stage.DORMANT, last_day=200, rhythm=40.0, churn_risk=0.1)

    hovering, none = scores(dormant, 340, rhythm=38.0)
    at_risk, transition = scores(hovering, 341, rhythm=70.0)

    assert (hovering.stage, none) == (Stage.DORMANT, None)
    assert at_risk.stage is Stage.AT_RISK
    assert transition is not None
    assert transition.previous_stage is Stage.DORMANT


def test_a_longer_rhythm_moves_a_churned_customer_back_to_dormant():
    churned = customer(Stage.CHURNED, last_day=0, rhythm=40.0, churn_risk=0.1, first_day=0)

    dormant, _ = scores(churned, 240, rhythm=55.0)  # 6x -> 4.4x: below churned's leave (5x)

    assert dormant.stage is Stage.DORMANT


def test_an_at_risk_customer_whose_rhythm_is_re_estimated_longer_becomes_active_again():
    at_risk = customer(Stage.AT_RISK, last_day=200, rhythm=40.0, churn_risk=0.1)

    active, transition = scores(at_risk, 290, rhythm=90.0)  # 90 days silent = 1x the rhythm

    assert active.stage is Stage.ACTIVE
    assert transition is not None
    assert transition.reason.startswith("no longer declining")


# --- decline by churn risk --------------------------------------------------------------


def test_a_high_churn_risk_makes_an_active_customer_at_risk():
    state = customer()

    at_risk, transition = scores(state, 210, churn_risk=0.8)

    assert at_risk.stage is Stage.AT_RISK
    assert transition is not None
    assert "churn risk 0.80" in transition.reason


def test_churn_risk_hovering_around_the_at_risk_threshold_does_not_flap():
    """Enter above 0.75, leave below 0.60: a customer wobbling around 0.75 moves once."""
    state = customer(churn_risk=0.7)
    moved = []
    for n, risk in enumerate([0.74, 0.76, 0.72, 0.77, 0.65, 0.76, 0.61]):
        state, transition = scores(state, 201 + n, churn_risk=risk)
        if transition is not None:
            moved.append(transition.stage)

    assert moved == [Stage.AT_RISK]


def test_at_risk_by_churn_risk_returns_to_active_below_the_leave_threshold():
    state = customer(Stage.AT_RISK, churn_risk=0.8)

    active, _ = scores(state, 201, churn_risk=0.55)

    assert active.stage is Stage.ACTIVE


def test_scores_older_than_the_applied_ones_are_ignored():
    state = customer(churn_risk=0.2)
    state, _ = scores(state, 210, churn_risk=0.2)

    late, transition = scores(state, 205, churn_risk=0.95)

    assert (late, transition) == (state, None)


# --- won back ---------------------------------------------------------------------------


@pytest.mark.parametrize("declined", [Stage.AT_RISK, Stage.DORMANT, Stage.CHURNED])
def test_a_purchase_after_decline_wins_the_customer_back(declined):
    state = customer(declined, last_day=0, churn_risk=0.9)

    won_back, transition = on_order(state, day(400), 60.0, "evt-order", RULES)

    assert won_back.stage is Stage.WON_BACK
    assert won_back.stage_since == day(400)
    assert transition is not None
    assert transition.previous_stage is declined
    assert transition.reason == f"purchase after 400 days of silence while {declined}"


def test_a_won_back_customer_is_not_pushed_back_to_at_risk_by_the_churn_risk_before_the_order():
    state = customer(Stage.DORMANT, last_day=0, churn_risk=0.9)
    won_back, _ = on_order(state, day(400), 60.0, "evt-order", RULES)

    after, transition = on_sweep(won_back, day(401), RULES)

    assert won_back.churn_risk is None
    assert (after.stage, transition) == (Stage.WON_BACK, None)


def test_won_back_settles_into_active_after_the_settling_period():
    won_back = customer(Stage.WON_BACK, last_day=400, since_day=400, churn_risk=0.2)

    settling, none = on_sweep(won_back, day(459), RULES)
    active, transition = on_sweep(won_back, day(460), RULES)

    assert (settling.stage, none) == (Stage.WON_BACK, None)
    assert active.stage is Stage.ACTIVE
    assert transition is not None
    assert "settled" in transition.reason


def test_a_won_back_customer_who_goes_silent_again_is_at_risk():
    won_back = customer(Stage.WON_BACK, last_day=400, since_day=400, rhythm=20.0)

    at_risk, _ = on_sweep(won_back, day(441), RULES)  # 41 days > 2x 20

    assert at_risk.stage is Stage.AT_RISK


# --- sweeps are safe to repeat ----------------------------------------------------------


def every_kind_of_customer() -> list[CustomerLifecycle]:
    """Customers in every stage with a spread of rhythms, risks and silences."""
    states = [new_prospect("p", day(0), "evt")[0]]
    for stage in Stage:
        if stage is Stage.PROSPECT:
            continue
        for last_day in (0, 150, 290):
            for rhythm in (None, 15.0, 45.0):
                for risk in (None, 0.1, 0.5, 0.7, 0.9):
                    states.append(
                        customer(
                            stage,
                            first_day=0,
                            last_day=last_day,
                            rhythm=rhythm,
                            churn_risk=risk,
                            tier=ValueTier.PROFIT,
                            grade=Grade.HIGH,
                        )
                    )
    return states


def test_a_sweep_run_twice_at_the_same_time_changes_nothing_the_second_time():
    now = day(300)
    first = [on_sweep(state, now, RULES) for state in every_kind_of_customer()]
    assert any(transition is not None for _, transition in first)  # the first sweep did work

    second = [on_sweep(state, now, RULES) for state, _ in first]

    assert [transition for _, transition in second] == [None] * len(second)
    assert [state for state, _ in second] == [state for state, _ in first]


def test_a_valuable_won_back_customer_settles_straight_into_loyal():
    """Settling re-applies every rule, so a sweep never needs a second pass to reach loyal."""
    won_back = replace(loyal_candidate(), stage=Stage.WON_BACK, stage_since=day(200))

    settled, _ = on_sweep(won_back, day(260), RULES)

    assert settled.stage is Stage.LOYAL
