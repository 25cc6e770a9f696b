"""The delivery decision: held-out, objecting and unconsented customers get no send; the
decision is deterministic, one per message, and a send always names a reachable channel."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from crm_contracts import Category, Channel, NotificationChannel, Purpose, Stage
from notification_service.domain.delivery_decision import (
    DecisionSettings,
    DeliveryDecision,
    Verdict,
    decide_customer,
)
from notification_service.domain.delivery_policy import ContactState, PolicySettings
from notification_service.domain.holdout import HOLDOUT, group_of
from notification_service.domain.playbooks import CHURN_WARNING, ORDER_PLACED, PlaybookRule
from notification_service.domain.rule_checks import DueMessage

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
CUSTOMERS = [f"customer-{n}" for n in range(12)]
CONSENT_CHANNEL = {
    NotificationChannel.EMAIL: Channel.EMAIL,
    NotificationChannel.SMS: Channel.SMS,
    NotificationChannel.IN_APP: Channel.PUSH,
}
CUSTOMER_CHANNELS = list(CONSENT_CHANNEL)

channel_lists = st.lists(st.sampled_from(list(NotificationChannel)), min_size=1, max_size=3)
categories = st.sampled_from(list(Category))


@st.composite
def rules(draw: st.DrawFn) -> PlaybookRule:
    """A rule on a churn warning or an order, marketing or service, held-out share drawn."""
    category = draw(categories)
    return PlaybookRule(
        rule_id=draw(st.sampled_from(["win-back", "second-order", "retention-offer"])),
        name="a rule",
        event_type=draw(st.sampled_from([CHURN_WARNING, ORDER_PLACED])),
        template_id="t",
        channels=tuple(dict.fromkeys(draw(channel_lists))),
        category=category,
        priority=draw(st.integers(0, 100)),
        enabled=draw(st.integers(0, 5)) > 0,  # mostly enabled, so sends are common
        holdout_share=draw(st.sampled_from([0.0, 0.0, 0.1, 0.5])),
    )


@st.composite
def messages(draw: st.DrawFn, customer: str, rule: PlaybookRule, index: int) -> DueMessage:
    """A message of ``rule`` due now or up to ten days ago, maybe a one-off send."""
    one_off = draw(st.booleans()) and index == 0
    days = draw(st.sampled_from([1, 1, 10]))  # mostly fresh, sometimes past the trigger age
    intended = NOW - draw(st.timedeltas(timedelta(0), timedelta(days=days)))
    return DueMessage(
        notification_id=f"n-{index}",
        customer_id=customer,
        rule_id=None if one_off else rule.rule_id,
        template_id=rule.template_id,
        channels=rule.channels,
        category=rule.category,
        priority=rule.priority,
        intended_at=intended,
        trigger_event_id=draw(st.sampled_from(["e-1", "e-2", None])),
        trigger_type=rule.event_type,
        trigger_at=intended - draw(st.timedeltas(timedelta(0), timedelta(days=3))),
    )


@st.composite
def contacts(draw: st.DrawFn, customer: str) -> ContactState | None:
    """What is known of the customer: nothing, or addresses, consents and an objection."""
    if draw(st.integers(0, 9)) == 0:
        return None
    consents = draw(
        st.dictionaries(
            st.tuples(st.sampled_from(list(Channel)), st.sampled_from(list(Purpose))),
            st.sampled_from([True, True, False]),
            min_size=draw(st.integers(0, 6)),
        )
    )
    return ContactState(
        customer_id=customer,
        time_zone=draw(st.sampled_from([None, "Europe/Berlin", "America/New_York", "Asia/Tokyo"])),
        email=draw(st.sampled_from([None, "a@example.com", "a@example.com"])),
        phone=draw(st.sampled_from([None, "+4915112345678"])),
        has_inbox=draw(st.booleans()),
        consents=consents,
        stage=draw(st.sampled_from([None, *Stage])),
        last_order_at=draw(st.sampled_from([None, NOW - timedelta(days=1), NOW])),
        objects_to_profiling=draw(st.integers(0, 2)) == 0,
    )


@st.composite
def situations(draw: st.DrawFn) -> Situation:
    """A customer's due messages with everything the decision reads."""
    drawn = draw(st.lists(rules(), min_size=1, max_size=4, unique_by=lambda r: r.rule_id))
    customer = draw(st.sampled_from(CUSTOMERS))
    due = [draw(messages(customer, rule, index)) for index, rule in enumerate(drawn)]
    recent = draw(st.lists(st.timedeltas(timedelta(0), timedelta(days=8)), max_size=3))
    quiet = draw(st.booleans())
    policy = PolicySettings(
        quiet_hours_start=time(21, 0) if quiet else time(0, 0),
        quiet_hours_end=time(9, 0) if quiet else time(0, 0),
        account_management_webhook_url=draw(st.sampled_from([None, "https://am.example/hook"])),
    )
    every = set(NotificationChannel)
    configured = draw(st.one_of(st.just(every), st.sets(st.sampled_from(list(every)))))
    age = draw(st.sampled_from([None, timedelta(days=7)]))
    return (
        due,
        {rule.rule_id: rule for rule in drawn},
        draw(contacts(customer)),
        sorted(NOW - ago for ago in recent),
        DecisionSettings(policy, frozenset(configured), age),
    )


Situation = tuple[
    list[DueMessage], dict[str, PlaybookRule], ContactState | None, list[datetime], DecisionSettings
]


def decide(situation: Situation) -> list[DeliveryDecision]:
    due, by_id, contact, recent, config = situation
    return decide_customer(due, by_id, contact, recent, config, NOW)


def sent(situation: Situation) -> list[tuple[DueMessage, DeliveryDecision]]:
    by_id = {message.notification_id: message for message in situation[0]}
    return [(by_id[d.notification_id], d) for d in decide(situation) if d.verdict is Verdict.SEND]


@settings(max_examples=300, deadline=None)
@given(situation=situations())
def test_every_message_gets_exactly_one_decision_and_the_same_one_again(
    situation: Situation,
) -> None:
    decisions = decide(situation)
    assert sorted(d.notification_id for d in decisions) == sorted(
        m.notification_id for m in situation[0]
    )
    assert decide(situation) == decisions


@settings(max_examples=300, deadline=None)
@given(situation=situations())
def test_a_held_out_customer_never_gets_a_send(situation: Situation) -> None:
    rules_by_id = situation[1]
    for message, decision in sent(situation):
        if message.rule_id is not None:
            share = rules_by_id[message.rule_id].effective_holdout_share
            assert group_of(message.rule_id, message.customer_id, share) != HOLDOUT
            assert decision.assignment != HOLDOUT


@settings(max_examples=300, deadline=None)
@given(situation=situations())
def test_an_objecting_customer_never_gets_a_message_resting_on_profiling(
    situation: Situation,
) -> None:
    contact = situation[2]
    for message, _ in sent(situation):
        assert contact is not None, "nothing known of the customer, yet a send"
        if contact.objects_to_profiling:
            assert message.trigger_type != CHURN_WARNING


@settings(max_examples=300, deadline=None)
@given(situation=situations())
def test_a_send_to_the_customer_has_consent_and_an_address(situation: Situation) -> None:
    contact = situation[2]
    for message, decision in sent(situation):
        assert contact is not None
        assert decision.choice is not None
        channel = decision.choice.channel
        assert channel in message.channels
        if channel not in CONSENT_CHANNEL:
            continue  # staff's webhook: no customer consent involved
        marketing = message.category is Category.MARKETING
        purpose = Purpose.MARKETING if marketing else Purpose.SERVICE
        granted = contact.consents.get((CONSENT_CHANNEL[channel], purpose))
        assert granted is True if marketing else granted is not False
        assert decision.choice.address


@settings(max_examples=200, deadline=None)
@given(situation=situations())
def test_a_disabled_or_stale_rule_never_sends(situation: Situation) -> None:
    rules_by_id, config = situation[1], situation[4]
    for message, _ in sent(situation):
        if message.rule_id is not None:
            assert rules_by_id[message.rule_id].enabled
        if config.max_trigger_age is not None:
            assert NOW - message.intended_at <= config.max_trigger_age


def test_a_held_out_customer_is_suppressed_with_the_reason_and_group() -> None:
    rule = PlaybookRule(
        rule_id="win-back",
        name="Win back",
        event_type=ORDER_PLACED,
        template_id="t",
        channels=(NotificationChannel.EMAIL,),
        category=Category.MARKETING,
        holdout_share=0.5,
    )
    held = next(f"c-{n}" for n in range(1000) if group_of("win-back", f"c-{n}", 0.5) == HOLDOUT)
    message = DueMessage(
        notification_id="n",
        customer_id=held,
        rule_id="win-back",
        template_id="t",
        channels=rule.channels,
        category=rule.category,
        priority=0,
        intended_at=NOW,
    )
    contact = ContactState(
        customer_id=held,
        email="a@example.com",
        consents={(Channel.EMAIL, Purpose.MARKETING): True},
    )
    config = DecisionSettings(PolicySettings(), frozenset(NotificationChannel))
    [decision] = decide_customer([message], {"win-back": rule}, contact, [], config, NOW)
    assert decision.verdict is Verdict.SUPPRESS
    assert decision.assignment == HOLDOUT
    assert decision.suppression is not None
    assert decision.suppression.reason == "holdout"
