"""Churn warnings: the signals, the recommended action, and one open warning per customer."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm_contracts import Grade, Stage, ValueTier
from lifecycle_service.domain.churn_warnings import (
    CHURN_RISK_ABOVE_THRESHOLD,
    SILENCE_PAST_RHYTHM,
    SPEND_DROPPED,
    WarningStatus,
    churn_signals,
    close_on_expiry,
    close_on_purchase,
    raise_or_update,
    recommended_action,
)
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.domain.stages import CustomerLifecycle

RULES = StageRules()
START = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return START + timedelta(days=n)


def customer(
    *,
    churn_risk: float | None = 0.1,
    tier: ValueTier | None = ValueTier.GROWTH,
    grade: Grade | None = Grade.MEDIUM,
    orders: int = 5,
    earlier_average: float = 100.0,
    last_order: float = 100.0,
    last_day: float = 100,
    rhythm: float | None = 30.0,
) -> CustomerLifecycle:
    """An active customer: the latest order ``last_order``, the earlier ones ``earlier_average``."""
    average = (earlier_average * (orders - 1) + last_order) / orders
    return CustomerLifecycle(
        customer_id="c-1",
        stage=Stage.ACTIVE,
        stage_since=day(0),
        first_purchase_at=day(0),
        last_purchase_at=day(last_day),
        order_count=orders,
        average_order_value=average,
        last_order_value=last_order,
        expected_interpurchase_days=rhythm,
        churn_risk=churn_risk,
        value_tier=tier,
        grade=grade,
    )


def test_a_healthy_customer_raises_no_signal():
    assert churn_signals(customer(), RULES, day(110)) == []


@pytest.mark.parametrize(
    ("tier", "risk", "warned"),
    [
        (ValueTier.STRATEGIC_PARTNER, 0.55, True),
        (ValueTier.BASIC, 0.55, False),
        (ValueTier.BASIC, 0.70, True),
        (None, 0.65, False),  # no tier yet: the "unknown" threshold, 0.7
    ],
)
def test_churn_risk_is_compared_with_the_threshold_of_the_customers_tier(tier, risk, warned):
    signals = churn_signals(customer(tier=tier, churn_risk=risk), RULES, day(110))

    assert (CHURN_RISK_ABOVE_THRESHOLD in signals) is warned


def test_spend_falling_by_half_against_the_customers_own_average_is_a_signal():
    halved = customer(earlier_average=100.0, last_order=50.0)
    dipped = customer(earlier_average=100.0, last_order=60.0)

    assert churn_signals(halved, RULES, day(110)) == [SPEND_DROPPED]
    assert churn_signals(dipped, RULES, day(110)) == []


def test_a_first_order_has_no_average_to_fall_against():
    assert churn_signals(customer(orders=1, last_order=5.0), RULES, day(110)) == []


def test_silence_past_the_rhythm_times_the_factor_is_a_signal():
    state = customer(last_day=100, rhythm=30.0)

    assert churn_signals(state, RULES, day(145)) == []  # 45 days = 1.5x, not past it
    assert churn_signals(state, RULES, day(146)) == [SILENCE_PAST_RHYTHM]


def test_without_a_rhythm_silence_raises_no_signal():
    assert churn_signals(customer(rhythm=None), RULES, day(400)) == []


@pytest.mark.parametrize(
    ("tier", "grade", "action"),
    [
        (ValueTier.STRATEGIC_PARTNER, Grade.MEDIUM, "account_manager_task"),
        (ValueTier.BASIC, Grade.VIP, "account_manager_task"),
        (ValueTier.PROFIT, Grade.HIGH, "retention_offer"),
        (None, None, "retention_offer"),
    ],
)
def test_high_value_customers_get_an_account_manager_others_an_offer(tier, grade, action):
    assert recommended_action(tier, grade) == action


def test_the_first_signal_opens_a_warning():
    warning = raise_or_update(None, customer(), [SPEND_DROPPED], day(110), "w-1")

    assert warning is not None
    assert (warning.warning_id, warning.status, warning.reasons) == (
        "w-1",
        WarningStatus.OPEN,
        (SPEND_DROPPED,),
    )
    assert warning.recommended_action == "retention_offer"


def test_repeated_signals_do_not_raise_a_second_warning():
    opened = raise_or_update(None, customer(), [SPEND_DROPPED], day(110), "w-1")

    again = raise_or_update(opened, customer(churn_risk=0.15), [SPEND_DROPPED], day(111), "w-2")

    assert again is None


def test_new_signals_update_the_open_warning_under_the_same_id():
    opened = raise_or_update(None, customer(), [SPEND_DROPPED], day(110), "w-1")

    updated = raise_or_update(
        opened, customer(), [SILENCE_PAST_RHYTHM, SPEND_DROPPED], day(130), "w-2"
    )

    assert updated is not None
    assert (updated.warning_id, updated.status) == ("w-1", WarningStatus.UPDATED)
    assert (updated.raised_at, updated.changed_at) == (day(110), day(130))
    assert updated.reasons == (SILENCE_PAST_RHYTHM, SPEND_DROPPED)


def test_no_signals_leave_an_open_warning_open():
    opened = raise_or_update(None, customer(), [SPEND_DROPPED], day(110), "w-1")

    assert raise_or_update(opened, customer(), [], day(111), "w-2") is None


def test_a_purchase_closes_the_open_warning_as_saved():
    opened = raise_or_update(None, customer(), [SPEND_DROPPED], day(110), "w-1")

    saved = close_on_purchase(opened, day(120))

    assert saved is not None
    assert (saved.status, saved.changed_at, saved.is_open) == (WarningStatus.SAVED, day(120), False)
    assert close_on_purchase(saved, day(121)) is None  # closing twice records nothing


def test_an_expired_warning_is_closed_as_lost_at_its_expiry_time():
    opened = raise_or_update(None, customer(), [SPEND_DROPPED], day(110), "w-1")

    assert close_on_expiry(opened, day(199), RULES) is None
    lost = close_on_expiry(opened, day(250), RULES)

    assert lost is not None
    assert (lost.status, lost.changed_at) == (WarningStatus.LOST, day(200))


def test_after_a_warning_is_closed_new_signals_open_a_new_one():
    opened = raise_or_update(None, customer(), [SPEND_DROPPED], day(110), "w-1")
    saved = close_on_purchase(opened, day(120))

    reopened = raise_or_update(saved, customer(), [SPEND_DROPPED], day(200), "w-2")

    assert reopened is not None
    assert (reopened.warning_id, reopened.status) == ("w-2", WarningStatus.OPEN)


def test_a_warning_lost_to_the_same_signals_is_not_raised_again():
    opened = raise_or_update(None, customer(), [SPEND_DROPPED], day(110), "w-1")
    lost = close_on_expiry(opened, day(250), RULES)

    assert raise_or_update(lost, customer(), [SPEND_DROPPED], day(250), "w-2") is None
    different = raise_or_update(lost, customer(), [CHURN_RISK_ABOVE_THRESHOLD], day(260), "w-3")
    assert different is not None
    assert (different.warning_id, different.status) == ("w-3", WarningStatus.OPEN)


def test_an_upgrade_to_strategic_partner_updates_the_recommended_action():
    opened = raise_or_update(None, customer(), [SPEND_DROPPED], day(110), "w-1")
    upgraded = replace(customer(), value_tier=ValueTier.STRATEGIC_PARTNER)

    updated = raise_or_update(opened, upgraded, [SPEND_DROPPED], day(115), "w-2")

    assert updated is not None
    assert updated.recommended_action == "account_manager_task"
