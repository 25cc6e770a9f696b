"""The chunk review on arrays gives what the per-customer domain functions give, row by row.

Reference: what the sweep did per customer before (``on_sweep``, then ``warning_changes`` on
the moved state, then ``next_review_at`` of the result; customers already moved after the
sweep's moment are left alone and their review counts from their stage's start). Generated
customers sit on and next to every threshold: the new window, the fall-back silences, the
rhythm bands (enter and leave), the churn-risk band, loyalty limits, won_back settling,
warning signals and expiry, with times a microsecond either side.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_contracts import Grade, Stage, ValueTier
from lifecycle_service.domain.churn_warnings import (
    CHURN_RISK_ABOVE_THRESHOLD,
    COMPLAINT_SURGE,
    DETRACTOR_ANSWER,
    FEEDBACK_SIGNALS,
    SILENCE_PAST_RHYTHM,
    SPEND_DROPPED,
    ChurnWarningRecord,
    WarningStatus,
    churn_signals,
    recommended_action,
)
from lifecycle_service.domain.review import next_review_at
from lifecycle_service.domain.review_arrays import (
    NOT_CANONICAL,
    OPENED,
    REASON_BITS,
    STAGES,
    UPDATED,
    columns_of,
    days_to_microseconds,
    from_microseconds,
    reasons_mask,
    review_chunk,
    to_microseconds,
)
from lifecycle_service.domain.rules import UNKNOWN_TIER, Band, StageRules
from lifecycle_service.domain.stages import CustomerLifecycle, on_sweep
from lifecycle_service.domain.warning_policy import WARNED_STAGES, warning_changes

NOW = datetime(2026, 11, 2, 1, tzinfo=UTC)
DAY = timedelta(days=1)
US = timedelta(microseconds=1)
REASONS = (CHURN_RISK_ABOVE_THRESHOLD, SILENCE_PAST_RHYTHM, SPEND_DROPPED)
# Feedback signals a report raised earlier: an open warning keeps them through every sweep.
WITH_FEEDBACK = (*REASONS, COMPLAINT_SURGE, DETRACTOR_ANSWER)


def _band(draw: st.DrawFn, low: float, high: float) -> Band:
    enter = draw(st.floats(low, high))
    return Band(enter=enter, leave=draw(st.floats(low * 0.5, enter)))


@st.composite
def stage_rules(draw: st.DrawFn) -> StageRules:
    """Rules around the defaults, sometimes looser or tighter, sometimes missing a threshold."""
    if draw(st.booleans()):
        return StageRules()
    at_risk_days = draw(st.integers(20, 200))
    thresholds = {
        key: draw(st.floats(0.0, 1.0))
        for key in [*(t.value for t in ValueTier), UNKNOWN_TIER]
        if draw(st.integers(0, 9)) > 0
    }
    return StageRules(
        new_days=draw(st.integers(1, 120)),
        at_risk_from_days=at_risk_days,
        dormant_from_days=at_risk_days + draw(st.integers(1, 150)),
        churned_from_days=at_risk_days + draw(st.integers(151, 300)),
        min_orders_for_rhythm=draw(st.integers(1, 4)),
        at_risk_rhythm=_band(draw, 1.0, 2.5),
        dormant_rhythm=_band(draw, 2.5, 4.5),
        churned_rhythm=_band(draw, 4.5, 7.0),
        at_risk_churn_risk=_band(draw, 0.5, 0.9),
        loyal_min_orders=draw(st.integers(1, 5)),
        loyal_tiers=frozenset(draw(st.sets(st.sampled_from([t.value for t in ValueTier])))),
        loyal_grades=frozenset(draw(st.sets(st.sampled_from([g.value for g in Grade])))),
        loyal_enter_max_churn_risk=draw(st.floats(0.0, 0.5)),
        loyal_exit_churn_risk=draw(st.floats(0.0, 0.6)),
        won_back_settling_days=draw(st.integers(1, 90)),
        warning_churn_risk_by_tier=thresholds,
        warning_spend_drop_factor=draw(st.floats(0.1, 0.9)),
        warning_silence_factor=draw(st.floats(0.5, 3.0)),
        warning_expiry_days=draw(st.integers(1, 120)),
    )


def _nudge(draw: st.DrawFn, moment: datetime) -> datetime:
    """The moment itself or a microsecond (or a day) either side."""
    return moment + draw(st.sampled_from([0, 1, -1, 0, 1, -1, 86_400_000_000])) * US


@st.composite
def silences(draw: st.DrawFn, rules: StageRules, rhythm: float | None) -> timedelta:
    """A silence before ``NOW``, often exactly at a threshold of ``rules``."""
    days = [rules.new_days, rules.at_risk_from_days, rules.dormant_from_days]
    days += [rules.churned_from_days, rules.warning_expiry_days]
    if rhythm is not None and rhythm > 0:
        bands = (rules.at_risk_rhythm, rules.dormant_rhythm, rules.churned_rhythm)
        for multiple in [*(b.enter for b in bands), *(b.leave for b in bands)]:
            days.append(multiple * rhythm)
        days.append(rules.warning_silence_factor * rhythm)
    if draw(st.booleans()):
        silence = draw(st.sampled_from(days)) * DAY
    else:
        silence = draw(st.floats(-5.0, 900.0)) * DAY
    return silence + draw(st.sampled_from([0, 1, -1, 0, 1000, -1000])) * US


@st.composite
def customers(draw: st.DrawFn, rules: StageRules) -> CustomerLifecycle:
    """Any stored state: prospects, one-time and repeat buyers, scored or not, any stage."""
    customer_id = f"c-{draw(st.integers(0, 10**6))}"
    stage = draw(st.sampled_from(STAGES))
    if draw(st.integers(0, 9)) == 0:  # never bought
        since = NOW - draw(st.floats(-2.0, 800.0)) * DAY
        return CustomerLifecycle(customer_id, stage, since)
    rhythm = draw(st.one_of(st.none(), st.just(0.0), st.floats(0.5, 400.0)))
    last = NOW - draw(silences(rules, rhythm))
    first_kind = draw(st.integers(0, 2))
    if first_kind == 0:
        first = last
    elif first_kind == 1:
        first = last - draw(st.floats(0.0, 700.0)) * DAY
    else:
        first = _nudge(draw, NOW - rules.new_days * DAY)
    first = min(first, last)
    since_kind = draw(st.integers(0, 2))
    if since_kind == 0:
        since = last
    elif since_kind == 1:
        since = NOW - draw(st.floats(-3.0, 400.0)) * DAY
    else:
        since = _nudge(draw, NOW - rules.won_back_settling_days * DAY)
    orders = draw(st.integers(1, 12))
    average = draw(st.one_of(st.none(), st.floats(0.0, 500.0)))
    last_value = draw(
        st.one_of(
            st.none(),
            st.floats(0.0, 500.0),
            st.just((average or 0.0) * rules.warning_spend_drop_factor),
        )
    )
    risk = draw(
        st.one_of(
            st.none(),
            st.floats(0.0, 1.0),
            st.sampled_from(
                [
                    rules.at_risk_churn_risk.enter,
                    rules.at_risk_churn_risk.leave,
                    rules.loyal_enter_max_churn_risk,
                    rules.loyal_exit_churn_risk,
                    *rules.warning_churn_risk_by_tier.values(),
                ]
            ),
        )
    )
    return CustomerLifecycle(
        customer_id=customer_id,
        stage=stage,
        stage_since=since,
        first_purchase_at=first,
        last_purchase_at=last,
        order_count=orders,
        average_order_value=average,
        last_order_value=last_value,
        expected_interpurchase_days=rhythm,
        churn_risk=risk,
        value_tier=draw(st.one_of(st.none(), st.sampled_from(ValueTier))),
        grade=draw(st.one_of(st.none(), st.sampled_from(Grade))),
        predicted_clv_12m=draw(st.one_of(st.none(), st.floats(0.0, 9_000.0))),
    )


@st.composite
def warnings(
    draw: st.DrawFn, state: CustomerLifecycle, rules: StageRules
) -> ChurnWarningRecord | None:
    """None, or a warning in any status raised around its expiry, with any reason list."""
    if draw(st.booleans()):
        return None
    if draw(st.integers(0, 2)) == 0:
        raised = _nudge(draw, NOW - rules.warning_expiry_days * DAY)
    else:
        raised = NOW - draw(st.floats(-1.0, 100.0)) * DAY
    signals = tuple(sorted(churn_signals(state, rules, NOW)))
    reasons = draw(
        st.one_of(
            st.just(signals),  # the signals again: unchanged, or updated by tier/grade/action
            st.just(signals),
            st.lists(st.sampled_from(REASONS), unique=True, min_size=1).map(
                lambda r: tuple(sorted(r))
            ),
            st.lists(st.sampled_from(WITH_FEEDBACK), unique=True, min_size=1).map(
                lambda r: tuple(sorted(r))
            ),
            st.sampled_from(sorted(FEEDBACK_SIGNALS)).map(lambda r: tuple(sorted({*signals, r}))),
            st.lists(st.sampled_from([*REASONS, "older_reason"]), max_size=3).map(tuple),
        )
    )
    tier = draw(st.one_of(st.just(state.value_tier), st.none(), st.sampled_from(ValueTier)))
    grade = draw(st.one_of(st.just(state.grade), st.none(), st.sampled_from(Grade)))
    return ChurnWarningRecord(
        warning_id=f"w-{state.customer_id}",
        customer_id=state.customer_id,
        status=draw(st.sampled_from([*WarningStatus, WarningStatus.OPEN, WarningStatus.UPDATED])),
        raised_at=raised,
        changed_at=raised,
        reasons=reasons,
        churn_risk=state.churn_risk,
        value_tier=tier,
        grade=grade,
        predicted_clv_12m=state.predicted_clv_12m,
        recommended_action=draw(
            st.sampled_from([recommended_action(tier, grade), "retention_offer"])
        ),
    )


@st.composite
def chunks(
    draw: st.DrawFn,
) -> tuple[StageRules, datetime, list[tuple[CustomerLifecycle, ChurnWarningRecord | None]]]:
    rules = draw(stage_rules())
    rows = []
    for _ in range(draw(st.integers(1, 12))):
        state = draw(customers(rules))
        rows.append((state, draw(warnings(state, rules))))
    now = _nudge(draw, NOW) if draw(st.booleans()) else NOW
    return rules, now, rows


def _reference(
    state: CustomerLifecycle, warning: ChurnWarningRecord | None, rules: StageRules, now: datetime
) -> tuple[bool, CustomerLifecycle, list[ChurnWarningRecord], datetime | None]:
    """What the per-customer sweep did: (reviewed, state, warning changes, next review)."""
    last = state.last_purchase_at
    if state.stage_since > now or (last is not None and last > now):
        return False, state, [], next_review_at(state, warning, rules, state.stage_since)
    moved, _ = on_sweep(state, now, rules)
    changes = warning_changes(warning, moved, rules, now, "new")
    current = changes[-1] if changes else warning
    return True, moved, changes, next_review_at(moved, current, rules, max(state.stage_since, now))


def _mask(reasons: list[str] | tuple[str, ...]) -> int:
    return sum(REASON_BITS[r] for r in set(reasons))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunks())
def test_the_arrays_give_the_domain_s_stage_warning_and_review_time(
    chunk: tuple[StageRules, datetime, list[tuple[CustomerLifecycle, ChurnWarningRecord | None]]],
) -> None:
    rules, now, rows = chunk
    review = review_chunk(columns_of(rows), rules, to_microseconds(now))
    for i, (state, warning) in enumerate(rows):
        reviewed, moved, changes, review_at = _reference(state, warning, rules, now)
        assert bool(review.reviewed[i]) is reviewed
        assert STAGES[review.stage[i]] is moved.stage
        assert bool(review.moved[i]) is (moved.stage is not state.stage)
        assert from_microseconds(int(review.next_review_at[i])) == review_at
        expired = [c for c in changes if c.status is WarningStatus.LOST]
        assert bool(review.warning_expired[i]) is bool(expired)
        raised = [c for c in changes if c.is_open]
        expected = 0
        if raised:
            expected = OPENED if raised[0].status is WarningStatus.OPEN else UPDATED
            state_signals = [r for r in raised[0].reasons if r not in FEEDBACK_SIGNALS]
            assert int(review.signals[i]) == _mask(state_signals)
        assert int(review.warning_raised[i]) == expected
        if reviewed and moved.stage in WARNED_STAGES:
            assert int(review.signals[i]) == _mask(churn_signals(moved, rules, now))
        assert bool(review.changed[i]) is (moved.stage is not state.stage or bool(changes))


@given(
    st.one_of(
        st.floats(-1_000.0, 100_000.0),
        st.integers(-(2**20), 2**20).map(lambda n: n / 16_384),  # exact halves of a µs
        st.floats(0.0, 400.0).map(lambda r: 1.8 * r + timedelta(milliseconds=1) / DAY),
    )
)
def test_days_become_microseconds_as_timedelta_rounds_them(days: float) -> None:
    converted = days_to_microseconds(np.array([days]))
    assert int(converted[0]) == (days * DAY) // US


def test_a_stored_reason_list_matches_only_in_the_domain_s_own_form() -> None:
    assert reasons_mask((CHURN_RISK_ABOVE_THRESHOLD, SPEND_DROPPED)) == 5
    assert reasons_mask((SPEND_DROPPED, CHURN_RISK_ABOVE_THRESHOLD)) & NOT_CANONICAL
    assert reasons_mask((SPEND_DROPPED, SPEND_DROPPED)) & NOT_CANONICAL
    assert reasons_mask(("someday_reason",)) & NOT_CANONICAL
    assert reasons_mask(()) == 0


def test_a_chunk_of_the_sweep_s_worked_example_moves_whom_the_domain_moves() -> None:
    """Readable example: a one-time buyer at day 91 of silence goes at_risk, a prospect waits."""
    rules = StageRules()
    buyer = CustomerLifecycle(
        "c-1",
        Stage.NEW,
        NOW - 200 * DAY,
        first_purchase_at=NOW - 200 * DAY,
        last_purchase_at=NOW - 91 * DAY,
        order_count=1,
    )
    prospect = CustomerLifecycle("c-2", Stage.PROSPECT, NOW - 10 * DAY)
    loyal = replace(buyer, customer_id="c-3", stage=Stage.ACTIVE, last_purchase_at=NOW - DAY)
    review = review_chunk(
        columns_of([(buyer, None), (prospect, None), (loyal, None)]), rules, to_microseconds(NOW)
    )
    assert [STAGES[code] for code in review.stage] == [Stage.AT_RISK, Stage.PROSPECT, Stage.ACTIVE]
    assert review.moved.tolist() == [True, False, False]
    assert from_microseconds(int(review.next_review_at[1])) is None
