"""Delivery policy: consent and channel fallback, quiet hours, the cap, arbitration, retries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from crm_contracts import (
    Category,
    Channel,
    NotificationChannel,
    NotificationSuppressed,
    Purpose,
    Stage,
)
from notification_service.domain.default_playbook import DEFAULT_RULES
from notification_service.domain.delivery_policy import (
    Candidate,
    ChannelChoice,
    ContactState,
    Decision,
    PolicySettings,
    Suppression,
    SuppressionReason,
    arbitrate,
    choose_channel,
    frequency_cap_decision,
    next_attempt_or_fail,
    quiet_hours_release,
    retry_delay,
)
from notification_service.domain.playbooks import PlaybookRule

SETTINGS = PolicySettings()
HOOK = "https://crm.internal/account-management/tasks"
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
EMAIL, SMS, IN_APP, WEBHOOK = (
    NotificationChannel.EMAIL,
    NotificationChannel.SMS,
    NotificationChannel.IN_APP,
    NotificationChannel.WEBHOOK,
)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def berlin(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def rule(*channels: NotificationChannel, category: Category = Category.MARKETING) -> PlaybookRule:
    return PlaybookRule(
        rule_id="r",
        name="R",
        event_type="churn.warning",
        template_id="t",
        channels=channels or (EMAIL,),
        category=category,
    )


def contact(
    *,
    email: str | None = "ada@example.com",
    phone: str | None = "+4915112345678",
    has_inbox: bool = True,
    **consents: bool,
) -> ContactState:
    """A customer; consents given as ``email_marketing=True``, ``push_service=False``..."""
    recorded: dict[tuple[Channel, Purpose], bool] = {}
    for key, granted in consents.items():
        channel, purpose = key.split("_")
        recorded[(Channel(channel), Purpose(purpose))] = granted
    return ContactState(
        customer_id="c-1", email=email, phone=phone, has_inbox=has_inbox, consents=recorded
    )


def candidate(
    rule_id: str,
    *,
    priority: int = 10,
    category: Category = Category.MARKETING,
    trigger: str | None = None,
    due: datetime = NOW,
) -> Candidate:
    event = trigger or f"evt-{rule_id}"
    return Candidate(
        key=f"{rule_id}/c-1/{event}",
        rule_id=rule_id,
        trigger_event_id=event,
        category=category,
        priority=priority,
        due_at=due,
    )


def outcomes(decisions: list[Decision]) -> dict[str, tuple[str, Any]]:
    """rule id -> (outcome, when or reason)."""
    return {
        d.candidate.rule_id: (d.outcome, d.reason if d.outcome == "suppress" else d.at)
        for d in decisions
    }


def test_suppression_reasons_are_the_contracts():
    contract = NotificationSuppressed.model_fields["reason"].annotation

    assert set(get_args(SuppressionReason)) == set(get_args(contract))


# Channel and consent.


def test_marketing_goes_on_a_channel_with_marketing_consent():
    chosen = choose_channel(rule(EMAIL), contact(email_marketing=True), SETTINGS)

    assert chosen == ChannelChoice(EMAIL, "ada@example.com")


def test_marketing_without_consent_is_suppressed_no_consent():
    chosen = choose_channel(rule(EMAIL), contact(), SETTINGS)

    assert chosen == Suppression("no_consent", "email: no_consent")


def test_marketing_after_withdrawal_is_suppressed_unsubscribed():
    chosen = choose_channel(rule(EMAIL), contact(email_marketing=False), SETTINGS)

    assert isinstance(chosen, Suppression)
    assert chosen.reason == "unsubscribed"


def test_service_messages_need_no_opt_in():
    chosen = choose_channel(rule(EMAIL, category=Category.SERVICE), contact(), SETTINGS)

    assert chosen == ChannelChoice(EMAIL, "ada@example.com")


def test_a_service_opt_out_blocks_that_channel_and_falls_back():
    service = rule(EMAIL, IN_APP, category=Category.SERVICE)

    assert choose_channel(service, contact(email_service=False), SETTINGS) == ChannelChoice(
        IN_APP, "c-1"
    )
    only_email = rule(EMAIL, category=Category.SERVICE)
    blocked = choose_channel(only_email, contact(email_service=False), SETTINGS)
    assert isinstance(blocked, Suppression)
    assert blocked.reason == "unsubscribed"


def test_marketing_falls_back_to_the_next_consented_channel():
    chosen = choose_channel(
        rule(EMAIL, SMS), contact(email_marketing=False, sms_marketing=True), SETTINGS
    )

    assert chosen == ChannelChoice(SMS, "+4915112345678")


def test_a_missing_address_falls_back_to_the_next_channel():
    chosen = choose_channel(
        rule(EMAIL, SMS), contact(email=None, email_marketing=True, sms_marketing=True), SETTINGS
    )

    assert chosen == ChannelChoice(SMS, "+4915112345678")


def test_the_inbox_reads_app_consent_and_needs_an_account():
    consented = contact(push_marketing=True)

    assert choose_channel(rule(IN_APP), consented, SETTINGS) == ChannelChoice(IN_APP, "c-1")
    guest = replace(consented, has_inbox=False)
    assert choose_channel(rule(IN_APP), guest, SETTINGS) == Suppression(
        "no_contact", "in_app: no_contact"
    )


def test_no_reachable_channel_lists_each_and_reports_the_customers_wish_first():
    chosen = choose_channel(
        rule(EMAIL, SMS, IN_APP),
        contact(phone=None, email_marketing=False, sms_marketing=True),
        SETTINGS,
    )

    assert chosen == Suppression(
        "unsubscribed", "email: unsubscribed; sms: no_contact; in_app: no_consent"
    )


def test_no_address_anywhere_is_no_contact():
    chosen = choose_channel(
        rule(EMAIL, SMS, category=Category.SERVICE), contact(email=None, phone=None), SETTINGS
    )

    assert isinstance(chosen, Suppression)
    assert chosen.reason == "no_contact"
    assert chosen.channel is None


def test_the_account_manager_task_goes_to_the_internal_hook_without_customer_consent():
    task = next(r for r in DEFAULT_RULES if r.rule_id == "high-value-warning-task")
    settings = replace(SETTINGS, account_management_webhook_url=HOOK)

    assert choose_channel(task, contact(email=None, webhook_service=False), settings) == (
        ChannelChoice(WEBHOOK, HOOK)
    )


def test_an_unconfigured_internal_hook_is_no_contact():
    chosen = choose_channel(rule(WEBHOOK, category=Category.SERVICE), contact(), SETTINGS)

    assert isinstance(chosen, Suppression)
    assert chosen.reason == "no_contact"


# Quiet hours, in the customer's time zone.


def test_a_message_due_at_night_goes_at_nine_next_morning_local_time():
    released = quiet_hours_release(berlin(2025, 1, 14, 23), "Europe/Berlin", SETTINGS)

    assert released == berlin(2025, 1, 15, 9)
    assert released == datetime(2025, 1, 15, 8, tzinfo=UTC)
    assert released.tzinfo is UTC


@pytest.mark.parametrize(
    ("local", "released"),
    [
        ((8, 59), (1, 15, 9, 0)),
        ((9, 0), None),
        ((14, 0), None),
        ((20, 59), None),
        ((21, 0), (1, 16, 9, 0)),
        ((0, 30), (1, 15, 9, 0)),
    ],
)
def test_quiet_hours_boundaries(local, released):
    moment = berlin(2025, 1, 15, *local)

    expected = moment if released is None else berlin(2025, *released)
    assert quiet_hours_release(moment, "Europe/Berlin", SETTINGS) == expected


def test_outside_quiet_hours_the_moment_is_returned_as_is():
    moment = berlin(2025, 1, 15, 14)

    assert quiet_hours_release(moment, "Europe/Berlin", SETTINGS) is moment


def test_the_morning_after_the_clocks_go_forward_is_one_hour_earlier_in_utc():
    # Berlin moves from UTC+1 to UTC+2 at 02:00 on 30 March 2025.
    released = quiet_hours_release(berlin(2025, 3, 29, 23), "Europe/Berlin", SETTINGS)

    assert released == datetime(2025, 3, 30, 7, tzinfo=UTC)


def test_the_morning_after_the_clocks_go_back_is_one_hour_later_in_utc():
    # Berlin moves from UTC+2 to UTC+1 at 03:00 on 26 October 2025.
    released = quiet_hours_release(berlin(2025, 10, 25, 22), "Europe/Berlin", SETTINGS)

    assert released == datetime(2025, 10, 26, 8, tzinfo=UTC)


def test_quiet_hours_follow_the_customers_zone_not_utc():
    # 03:00 UTC is 23:00 the evening before in New York (UTC-4 in summer).
    moment = datetime(2025, 7, 10, 3, tzinfo=UTC)

    assert quiet_hours_release(moment, "Europe/Berlin", SETTINGS) == berlin(2025, 7, 10, 9)
    assert quiet_hours_release(moment, "America/New_York", SETTINGS) == datetime(
        2025, 7, 10, 13, tzinfo=UTC
    )


@pytest.mark.parametrize("zone", [None, "", "Mars/Olympus_Mons", "../etc/passwd"])
def test_an_unknown_time_zone_counts_as_utc(zone):
    assert quiet_hours_release(datetime(2025, 1, 15, 22, tzinfo=UTC), zone, SETTINGS) == datetime(
        2025, 1, 16, 9, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("clock", "released"),
    [
        (time(11, 59), None),
        (time(12, 0), time(14, 0)),
        (time(13, 30), time(14, 0)),
        (time(14, 0), None),
        (time(23, 0), None),
    ],
)
def test_a_quiet_window_within_one_day(clock, released):
    lunch = replace(SETTINGS, quiet_hours_start=time(12), quiet_hours_end=time(14))
    moment = datetime.combine(date(2025, 1, 15), clock, tzinfo=BERLIN)

    expected = moment if released is None else datetime.combine(moment.date(), released, BERLIN)
    assert quiet_hours_release(moment, "Europe/Berlin", lunch) == expected


def test_equal_start_and_end_means_no_quiet_hours():
    never = replace(SETTINGS, quiet_hours_start=time(9), quiet_hours_end=time(9))
    moment = berlin(2025, 1, 15, 3)

    assert quiet_hours_release(moment, "Europe/Berlin", never) is moment


def test_quiet_hours_refuse_a_naive_moment():
    with pytest.raises(ValueError, match="timezone-aware"):
        quiet_hours_release(datetime(2025, 1, 15, 23), "Europe/Berlin", SETTINGS)


# The frequency cap.


def test_a_first_marketing_message_is_allowed():
    assert frequency_cap_decision(Category.MARKETING, Stage.ACTIVE, [], NOW, SETTINGS).allowed


def test_a_second_offer_inside_72_hours_waits_for_the_window_to_free():
    decision = frequency_cap_decision(
        Category.MARKETING, Stage.ACTIVE, [NOW - hours(71)], NOW, SETTINGS
    )

    assert not decision.allowed
    assert decision.not_before == NOW + hours(1)


def test_a_send_exactly_one_window_ago_no_longer_counts():
    decision = frequency_cap_decision(
        Category.MARKETING, Stage.ACTIVE, [NOW - hours(72)], NOW, SETTINGS
    )

    assert decision.allowed


def test_a_fourth_offer_inside_the_window_waits_for_the_oldest_to_age_out():
    three_per_window = replace(SETTINGS, marketing_cap_count=3)
    sends = [NOW - hours(60), NOW - hours(10), NOW - hours(30)]

    decision = frequency_cap_decision(Category.MARKETING, None, sends, NOW, three_per_window)

    assert not decision.allowed
    assert decision.not_before == NOW + hours(12)
    assert frequency_cap_decision(
        Category.MARKETING, None, sends[1:], NOW, three_per_window
    ).allowed


def test_service_messages_are_exempt_from_the_cap():
    sends = [NOW - hours(n) for n in range(10)]

    assert frequency_cap_decision(Category.SERVICE, Stage.DORMANT, sends, NOW, SETTINGS).allowed


def test_customers_sliding_toward_churn_meet_a_stricter_cap():
    sends = [NOW - timedelta(days=4)]

    assert frequency_cap_decision(Category.MARKETING, Stage.ACTIVE, sends, NOW, SETTINGS).allowed
    for stage in (Stage.AT_RISK, Stage.DORMANT, Stage.CHURNED):
        decision = frequency_cap_decision(Category.MARKETING, stage, sends, NOW, SETTINGS)
        assert not decision.allowed
        assert decision.not_before == NOW + timedelta(days=3)


def test_sends_after_the_moment_in_question_are_not_counted():
    decision = frequency_cap_decision(Category.MARKETING, None, [NOW + hours(1)], NOW, SETTINGS)

    assert decision.allowed


# Arbitration between messages due together.


def test_the_most_valuable_offer_takes_the_slot_the_next_waits_the_rest_are_dropped():
    decisions = arbitrate(
        [
            candidate("low", priority=10),
            candidate("top", priority=80),
            candidate("mid", priority=50),
        ],
        [],
        NOW,
        SETTINGS,
    )

    assert outcomes(decisions) == {
        "top": ("send", NOW),
        "mid": ("defer", NOW + hours(72)),
        "low": ("suppress", "lower_priority"),
    }


def test_service_messages_all_go_beside_the_marketing_winner():
    decisions = arbitrate(
        [
            candidate("care", priority=1, category=Category.SERVICE),
            candidate("task", priority=100, category=Category.SERVICE),
            candidate("offer", priority=50),
        ],
        [NOW - hours(1)],
        NOW,
        SETTINGS,
    )

    assert outcomes(decisions) == {
        "task": ("send", NOW),
        "care": ("send", NOW),
        "offer": ("defer", NOW + hours(71)),
    }
    assert [d.candidate.rule_id for d in decisions] == ["task", "care", "offer"]


def test_one_event_yields_one_marketing_message_even_when_the_cap_has_room():
    roomy = replace(SETTINGS, marketing_cap_count=5)

    decisions = arbitrate(
        [
            candidate("sms-offer", priority=5, trigger="evt-1"),
            candidate("email-offer", priority=9, trigger="evt-1"),
        ],
        [],
        NOW,
        roomy,
    )

    assert outcomes(decisions) == {
        "email-offer": ("send", NOW),
        "sms-offer": ("suppress", "lower_priority"),
    }
    (loser,) = (d for d in decisions if d.outcome == "suppress")
    assert loser.detail == "email-offer was chosen for the same event"


def test_an_offer_blocked_by_earlier_sends_past_the_max_deferral_is_frequency_capped():
    impatient = replace(SETTINGS, max_deferral=hours(24))

    decisions = arbitrate([candidate("offer")], [NOW - hours(1)], NOW, impatient)

    assert outcomes(decisions) == {"offer": ("suppress", "frequency_cap")}


def test_deferral_counts_from_when_the_message_was_first_due():
    # Already held two days (quiet hours, an earlier deferral); 30 more hours is too long.
    late = candidate("offer", due=NOW - timedelta(days=2))

    decisions = arbitrate([late], [NOW - hours(42)], NOW, SETTINGS)

    assert outcomes(decisions) == {"offer": ("suppress", "frequency_cap")}


def test_a_customer_sliding_toward_churn_gets_only_the_most_valuable_message():
    decisions = arbitrate(
        [candidate("wake-up", priority=60), candidate("offer", priority=70)],
        [],
        NOW,
        SETTINGS,
        stage=Stage.DORMANT,
    )

    assert outcomes(decisions) == {
        "offer": ("send", NOW),
        "wake-up": ("suppress", "lower_priority"),
    }


def test_equal_priorities_go_to_the_earlier_due_then_the_rule_id():
    decisions = arbitrate(
        [
            candidate("b"),
            candidate("c", due=NOW - hours(2)),
            candidate("a"),
        ],
        [],
        NOW,
        SETTINGS,
    )

    assert [(d.candidate.rule_id, d.outcome) for d in decisions] == [
        ("c", "send"),
        ("a", "defer"),
        ("b", "suppress"),
    ]


def test_arbitration_refuses_messages_not_yet_due():
    with pytest.raises(ValueError, match="later"):
        arbitrate([candidate("later", due=NOW + hours(1))], [], NOW, SETTINGS)


# Retries.


def test_backoff_doubles_and_is_capped():
    delays = [retry_delay(attempt, SETTINGS, jitter=0.5) for attempt in range(1, 9)]

    assert delays == [
        timedelta(seconds=30),
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=4),
        timedelta(minutes=8),
        timedelta(minutes=15),
        timedelta(minutes=15),
        timedelta(minutes=15),
    ]


def test_full_jitter_spreads_the_wait_from_zero_to_the_ceiling():
    assert retry_delay(3, SETTINGS, jitter=0.0) == timedelta(0)
    assert retry_delay(3, SETTINGS, jitter=0.25) == timedelta(minutes=1)
    assert retry_delay(3, SETTINGS, jitter=0.999) < timedelta(minutes=4)


def test_a_very_late_attempt_waits_the_cap_without_overflowing():
    assert retry_delay(10_000, SETTINGS, jitter=0.5) == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("attempt", "jitter", "message"),
    [(0, 0.5, "attempt counts from 1"), (1, 1.0, "jitter"), (1, -0.1, "jitter")],
)
def test_retry_delay_refuses_impossible_inputs(attempt, jitter, message):
    with pytest.raises(ValueError, match=message):
        retry_delay(attempt, SETTINGS, jitter)


def test_five_attempts_then_failed():
    attempts = [1]
    while (following := next_attempt_or_fail(attempts[-1], SETTINGS)) is not None:
        attempts.append(following)

    assert attempts == [1, 2, 3, 4, 5]
    assert next_attempt_or_fail(5, SETTINGS) is None


def test_settings_name_every_impossible_value():
    with pytest.raises(ValueError) as raised:
        PolicySettings(
            marketing_cap_count=0,
            sliding_cap_window=timedelta(0),
            max_attempts=0,
            backoff_max=timedelta(seconds=1),
        )

    message = str(raised.value)
    for name in ("marketing_cap_count", "sliding_cap_window", "max_attempts", "backoff_max"):
        assert name in message
