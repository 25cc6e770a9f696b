"""Playbook rules: the shipped defaults, conditions one by one, dedup keys, validation, JSON."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_contracts import (
    Category,
    ChurnWarning,
    CustomerCreated,
    CustomerSnapshot,
    Grade,
    Money,
    NotificationChannel,
    OrderPlaced,
    Stage,
    StageChanged,
    ValueTier,
)
from crm_shared.rule_documents import InvalidRuleDocument
from notification_service.domain.default_playbook import DEFAULT_RULES, DEFAULT_TEMPLATE_IDS
from notification_service.domain.playbooks import (
    CHURN_WARNING,
    CUSTOMER_CREATED,
    ORDER_PLACED,
    STAGE_CHANGED,
    Conditions,
    PlaybookRule,
    Trigger,
    cancelled_by_purchase,
    dedup_key,
    due_at,
    matching_rules,
)
from notification_service.domain.rule_validation import validate_playbook, validate_rule

AT = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def trigger(event_type: str = ORDER_PLACED, **facts: Any) -> Trigger:
    return Trigger(
        event_id="evt-1", event_type=event_type, customer_id="c-1", occurred_at=AT, **facts
    )


def first_order(**facts: Any) -> Trigger:
    return trigger(ORDER_PLACED, is_first_order=True, **facts)


def stage_changed(stage: Stage, previous: Stage | None = Stage.ACTIVE, **facts: Any) -> Trigger:
    return trigger(STAGE_CHANGED, stage=stage, previous_stage=previous, **facts)


def warning(status: str = "open", action: str = "retention_offer", **facts: Any) -> Trigger:
    return trigger(CHURN_WARNING, warning_status=status, recommended_action=action, **facts)


def rule(**overrides: Any) -> PlaybookRule:
    base = PlaybookRule(
        rule_id="test-rule",
        name="A test rule",
        event_type=STAGE_CHANGED,
        template_id="retention-offer",
        channels=(NotificationChannel.EMAIL,),
        category=Category.MARKETING,
        priority=10,
    )
    return replace(base, **overrides)


def matched_ids(t: Trigger) -> list[str]:
    return [r.rule_id for r in matching_rules(DEFAULT_RULES, t)]


def problem_fields(r: PlaybookRule, templates: list[str] | None = None) -> set[str]:
    return {p.field for p in validate_rule(r, templates)}


def default(rule_id: str) -> PlaybookRule:
    return next(r for r in DEFAULT_RULES if r.rule_id == rule_id)


# The shipped defaults.


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            first_order(),
            ["offer-40d-no-repeat", "welcome-first-order", "member-benefits-30d", "care-15d"],
        ),
        (trigger(ORDER_PLACED, is_first_order=False), []),
        (trigger(ORDER_PLACED), []),
        (stage_changed(Stage.DORMANT, Stage.AT_RISK), ["dormant-wake-up"]),
        (stage_changed(Stage.CHURNED, Stage.DORMANT), ["churned-win-back"]),
        (warning("open", "retention_offer"), ["warning-retention-offer"]),
        (warning("open", "account_manager_task"), ["high-value-warning-task"]),
        (warning("updated", "retention_offer"), []),
        (warning("updated", "account_manager_task"), []),
        (warning("saved"), []),
        (warning("lost"), []),
        (trigger(CUSTOMER_CREATED), []),
    ],
    ids=[
        "first-order",
        "repeat-order",
        "order-unknown-if-first",
        "turns-dormant",
        "churns",
        "warning",
        "warning-high-value",
        "warning-updated",
        "warning-high-value-updated",
        "warning-saved",
        "warning-lost",
        "customer-created",
    ],
)
def test_default_rules_match_what_they_should_and_nothing_else(event, expected):
    assert matched_ids(event) == expected


@pytest.mark.parametrize(
    "stage", [Stage.PROSPECT, Stage.NEW, Stage.ACTIVE, Stage.LOYAL, Stage.AT_RISK, Stage.WON_BACK]
)
def test_no_default_rule_messages_other_stage_changes(stage):
    assert matched_ids(stage_changed(stage)) == []


def test_a_high_value_warning_posts_a_task_instead_of_a_marketing_message():
    (task,) = matching_rules(DEFAULT_RULES, warning(action="account_manager_task"))

    assert task.channels == (NotificationChannel.WEBHOOK,)
    assert task.category is Category.SERVICE


def test_the_first_order_chain_is_spaced_out_from_the_order():
    schedule = {
        r.rule_id: due_at(r, first_order()) for r in matching_rules(DEFAULT_RULES, first_order())
    }

    assert schedule == {
        "welcome-first-order": AT,
        "care-15d": AT + timedelta(days=15),
        "member-benefits-30d": AT + timedelta(days=30),
        "offer-40d-no-repeat": AT + timedelta(days=40),
    }


def test_only_promotional_defaults_are_marketing():
    marketing = {r.rule_id for r in DEFAULT_RULES if r.category is Category.MARKETING}

    assert marketing == {
        "member-benefits-30d",
        "offer-40d-no-repeat",
        "dormant-wake-up",
        "churned-win-back",
        "warning-retention-offer",
        "cart-abandoned-reminder",
    }


def test_default_rules_are_valid_against_the_default_templates():
    assert validate_playbook(DEFAULT_RULES, DEFAULT_TEMPLATE_IDS) == []


def test_default_template_ids_name_each_template_once():
    assert sorted(DEFAULT_TEMPLATE_IDS) == [
        "account-manager-churn-task",
        "cart-reminder",
        "complaint-follow-up",
        "dormant-wake-up",
        "first-order-care",
        "member-benefits",
        "retention-offer",
        "second-order-offer",
        "welcome-first-order",
        "win-back-offer",
    ]


# Conditions, one by one.


@pytest.mark.parametrize(
    ("conditions", "facts", "matches"),
    [
        (Conditions(stages=frozenset({"dormant"})), {"stage": Stage.DORMANT}, True),
        (Conditions(stages=frozenset({"dormant"})), {"stage": Stage.CHURNED}, False),
        (Conditions(stages=frozenset({"dormant"})), {}, False),
        (Conditions(previous_stages=frozenset({"loyal"})), {"previous_stage": Stage.LOYAL}, True),
        (Conditions(previous_stages=frozenset({"loyal"})), {"previous_stage": Stage.NEW}, False),
        (Conditions(tiers=frozenset({"growth"})), {"value_tier": ValueTier.GROWTH}, True),
        (Conditions(tiers=frozenset({"growth"})), {"value_tier": ValueTier.BASIC}, False),
        (Conditions(tiers=frozenset({"growth"})), {}, False),
        (Conditions(grades=frozenset({"vip", "high"})), {"grade": Grade.HIGH}, True),
        (Conditions(grades=frozenset({"vip", "high"})), {"grade": Grade.LOW}, False),
        (Conditions(churn_risk_min=0.5), {"churn_risk": 0.5}, True),
        (Conditions(churn_risk_min=0.5), {"churn_risk": 0.49}, False),
        (Conditions(churn_risk_max=0.8), {"churn_risk": 0.8}, True),
        (Conditions(churn_risk_max=0.8), {"churn_risk": 0.81}, False),
        (Conditions(churn_risk_min=0.1), {}, False),
        (Conditions(churn_risk_max=0.9), {}, False),
        (Conditions(segments=frozenset({"champions"})), {"rfm_segment": "champions"}, True),
        (Conditions(segments=frozenset({"champions"})), {"rfm_segment": "hibernating"}, False),
        (Conditions(segments=frozenset({"champions"})), {"cluster": "champions"}, False),
        (Conditions(clusters=frozenset({"bargain_hunters"})), {"cluster": "bargain_hunters"}, True),
        (Conditions(clusters=frozenset({"bargain_hunters"})), {"cluster": "collectors"}, False),
        (Conditions(first_order_only=True), {"is_first_order": True}, True),
        (Conditions(first_order_only=True), {"is_first_order": False}, False),
        (Conditions(first_order_only=True), {}, False),
        (Conditions(first_order_only=False), {"is_first_order": False}, True),
        (Conditions(), {}, True),
    ],
)
def test_each_condition_holds_only_for_the_facts_it_names(conditions, facts, matches):
    assert conditions.matches(trigger(STAGE_CHANGED, **facts)) is matches


@pytest.mark.parametrize(
    ("actions", "action", "matches"),
    [
        (frozenset({"retention_offer"}), "retention_offer", True),
        (frozenset({"retention_offer"}), "account_manager_task", False),
        (None, "account_manager_task", True),
    ],
)
def test_recommended_action_condition(actions, action, matches):
    assert Conditions(recommended_actions=actions).matches(warning(action=action)) is matches


@pytest.mark.parametrize(
    ("statuses", "status", "matches"),
    [
        (Conditions().warning_statuses, "open", True),
        (Conditions().warning_statuses, "updated", False),
        (Conditions().warning_statuses, "saved", False),
        (frozenset({"saved"}), "saved", True),
        (frozenset({"open", "updated"}), "updated", True),
    ],
)
def test_warnings_match_only_their_statuses_newly_open_by_default(statuses, status, matches):
    assert Conditions(warning_statuses=statuses).matches(warning(status)) is matches


def test_warning_statuses_do_not_constrain_other_events():
    assert Conditions(warning_statuses=frozenset({"saved"})).matches(stage_changed(Stage.DORMANT))


def test_rules_of_another_event_type_or_disabled_do_not_match():
    rules = [
        rule(rule_id="on-warning", event_type=CHURN_WARNING),
        rule(rule_id="disabled", enabled=False),
        rule(rule_id="live"),
    ]

    assert [r.rule_id for r in matching_rules(rules, stage_changed(Stage.DORMANT))] == ["live"]


def test_matches_come_most_valuable_first_then_by_rule_id():
    rules = [
        rule(rule_id="b", priority=5),
        rule(rule_id="c", priority=9),
        rule(rule_id="a", priority=5),
    ]

    assert [r.rule_id for r in matching_rules(rules, stage_changed(Stage.NEW))] == ["c", "a", "b"]


def test_due_at_adds_the_delay_to_the_event_time():
    assert due_at(rule(delay=timedelta(hours=6)), stage_changed(Stage.NEW)) == AT + timedelta(
        hours=6
    )


def test_a_trigger_needs_an_aware_time():
    with pytest.raises(ValueError, match="occurred_at"):
        Trigger(
            event_id="e",
            event_type=ORDER_PLACED,
            customer_id="c",
            occurred_at=datetime(2025, 1, 1),  # naive on purpose
        )


# The offer that only goes to customers who have not bought again.


@pytest.mark.parametrize(
    ("last_order_at", "cancelled"),
    [
        (None, False),
        (AT, False),  # the triggering order itself
        (AT + timedelta(days=12), True),
    ],
)
def test_the_40_day_offer_is_cancelled_by_a_second_order(last_order_at, cancelled):
    assert cancelled_by_purchase(default("offer-40d-no-repeat"), AT, last_order_at) is cancelled


def test_rules_without_the_flag_are_not_cancelled_by_a_purchase():
    assert not cancelled_by_purchase(default("member-benefits-30d"), AT, AT + timedelta(days=3))


# De-duplication.


def test_dedup_key_is_stable_and_readable():
    offer = default("warning-retention-offer")

    assert dedup_key(offer, "c-1", "evt-1") == "warning-retention-offer/c-1/evt-1"
    assert dedup_key(offer, "c-1", "evt-1") == dedup_key("warning-retention-offer", "c-1", "evt-1")


def test_dedup_key_differs_by_rule_customer_and_event():
    keys = {
        dedup_key("r", "c-1", "evt-1"),
        dedup_key("r2", "c-1", "evt-1"),
        dedup_key("r", "c-2", "evt-1"),
        dedup_key("r", "c-1", "evt-2"),
    }

    assert len(keys) == 4


def test_dedup_key_parts_cannot_run_into_each_other():
    assert dedup_key("a", "b/c", "d") != dedup_key("a/b", "c", "d")


# Validation names every field at fault.


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"event_type": "order.shipped"}, {"event_type"}),
        ({"channels": ()}, {"channels"}),
        ({"channels": (NotificationChannel.EMAIL, NotificationChannel.EMAIL)}, {"channels.1"}),
        ({"channels": (NotificationChannel.WEBHOOK,)}, {"channels.0"}),
        ({"delay": timedelta(hours=-1)}, {"delay"}),
        ({"priority": -1}, {"priority"}),
        ({"rule_id": "Win Back!"}, {"rule_id"}),
        ({"rule_id": ""}, {"rule_id"}),
        ({"name": "  "}, {"name"}),
        ({"template_id": ""}, {"template_id"}),
        ({"conditions": Conditions(churn_risk_min=1.2)}, {"conditions.churn_risk_min"}),
        ({"conditions": Conditions(churn_risk_max=-0.1)}, {"conditions.churn_risk_max"}),
        (
            {"conditions": Conditions(churn_risk_min=0.8, churn_risk_max=0.3)},
            {"conditions.churn_risk_max"},
        ),
        ({"conditions": Conditions(stages=frozenset({"sleepy"}))}, {"conditions.stages"}),
        ({"conditions": Conditions(stages=frozenset())}, {"conditions.stages"}),
        (
            {"conditions": Conditions(previous_stages=frozenset({"gone"}))},
            {"conditions.previous_stages"},
        ),
        ({"conditions": Conditions(tiers=frozenset({"gold"}))}, {"conditions.tiers"}),
        ({"conditions": Conditions(grades=frozenset({"ultra"}))}, {"conditions.grades"}),
        ({"conditions": Conditions(segments=frozenset())}, {"conditions.segments"}),
        (
            {"conditions": Conditions(warning_statuses=frozenset({"closed"}))},
            {"conditions.warning_statuses"},
        ),
        (
            {"conditions": Conditions(warning_statuses=frozenset())},
            {"conditions.warning_statuses"},
        ),
        (
            {"conditions": Conditions(recommended_actions=frozenset({"retention_offer"}))},
            {"conditions.recommended_actions"},
        ),
        ({"conditions": Conditions(first_order_only=True)}, {"conditions.first_order_only"}),
        (
            {
                "event_type": CHURN_WARNING,
                "conditions": Conditions(previous_stages=frozenset({"new"})),
            },
            {"conditions.previous_stages"},
        ),
        (
            {
                "event_type": CHURN_WARNING,
                "conditions": Conditions(recommended_actions=frozenset({"call_them"})),
            },
            {"conditions.recommended_actions"},
        ),
    ],
)
def test_validation_names_the_field_at_fault(overrides, fields):
    assert problem_fields(rule(**overrides)) == fields


def test_validation_reports_every_problem_at_once():
    broken = rule(
        event_type="nope",
        channels=(),
        delay=timedelta(days=-1),
        conditions=Conditions(tiers=frozenset({"gold"}), churn_risk_min=2.0),
    )

    assert problem_fields(broken) == {
        "event_type",
        "channels",
        "delay",
        "conditions.tiers",
        "conditions.churn_risk_min",
    }


def test_a_valid_rule_has_no_problems():
    assert validate_rule(rule(conditions=Conditions(stages=frozenset({"dormant"})))) == []


def test_templates_are_checked_only_when_known_ids_are_given():
    custom = rule(template_id="spring-sale")

    assert problem_fields(custom) == set()
    assert problem_fields(custom, ["retention-offer"]) == {"template_id"}


def test_a_playbook_reports_duplicate_ids_and_each_rules_problems_by_index():
    rules = [rule(), rule(), rule(rule_id="other", channels=())]

    assert {p.field for p in validate_playbook(rules)} == {"rules.1.rule_id", "rules.2.channels"}


# JSON round trip.


@pytest.mark.parametrize("shipped", DEFAULT_RULES, ids=lambda r: r.rule_id)
def test_default_rules_survive_a_json_round_trip(shipped):
    assert PlaybookRule.from_dict(json.loads(json.dumps(shipped.to_dict()))) == shipped


def test_a_rule_with_every_condition_survives_a_json_round_trip():
    full = rule(
        enabled=False,
        channels=(NotificationChannel.SMS, NotificationChannel.IN_APP),
        delay=timedelta(days=1, hours=12),
        conditions=Conditions(
            stages=frozenset({"dormant", "churned"}),
            previous_stages=frozenset({"loyal"}),
            tiers=frozenset({"growth"}),
            grades=frozenset({"high"}),
            churn_risk_min=0.25,
            churn_risk_max=0.75,
            segments=frozenset({"at_risk"}),
            clusters=frozenset({"bargain_hunters"}),
            first_order_only=False,
            warning_statuses=frozenset({"open", "updated"}),
            unless_ordered_since_trigger=True,
        ),
    )

    data = json.loads(json.dumps(full.to_dict()))

    assert data["delay"] == "P1DT12H"
    assert data["conditions"]["stages"] == ["churned", "dormant"]
    assert PlaybookRule.from_dict(data) == full


def test_optional_fields_keep_their_defaults():
    minimal = {
        "rule_id": "r",
        "name": "R",
        "event_type": STAGE_CHANGED,
        "template_id": "t",
        "channels": ["email"],
        "category": "marketing",
    }

    read = PlaybookRule.from_dict(minimal)

    assert (read.enabled, read.priority, read.delay, read.conditions) == (
        True,
        0,
        timedelta(0),
        Conditions(),
    )


def test_unreadable_documents_report_every_field():
    data = {
        **rule().to_dict(),
        "priorty": 3,
        "channels": ["email", "fax"],
        "delay": "15 days",
        "enabled": "yes",
        "conditions": {"stages": "dormant", "churn_risk_min": "high", "colour": "red"},
    }
    del data["name"]

    with pytest.raises(InvalidRuleDocument) as raised:
        PlaybookRule.from_dict(data)

    assert {p.field for p in raised.value.problems} == {
        "priorty",
        "channels",
        "delay",
        "enabled",
        "name",
        "conditions.stages",
        "conditions.churn_risk_min",
        "conditions.colour",
    }


def test_conditions_must_be_an_object():
    with pytest.raises(InvalidRuleDocument, match="conditions: expected an object"):
        PlaybookRule.from_dict({**rule().to_dict(), "conditions": ["dormant"]})


# Triggers built from the event contracts.


def test_a_trigger_from_a_churn_warning_carries_its_facts():
    payload = ChurnWarning(
        warning_id="w-1",
        customer_id="c-1",
        raised_at=AT,
        status="open",
        reasons=["churn_risk_above_threshold"],
        churn_risk=0.71,
        value_tier=ValueTier.STRATEGIC_PARTNER,
        grade=Grade.VIP,
        recommended_action="account_manager_task",
    )

    assert Trigger.from_churn_warning("evt-9", payload) == Trigger(
        event_id="evt-9",
        event_type=CHURN_WARNING,
        customer_id="c-1",
        occurred_at=AT,
        value_tier=ValueTier.STRATEGIC_PARTNER,
        grade=Grade.VIP,
        churn_risk=0.71,
        warning_status="open",
        recommended_action="account_manager_task",
    )


def test_a_trigger_from_a_stage_change_carries_both_stages():
    payload = StageChanged(
        customer_id="c-1",
        previous_stage=Stage.AT_RISK,
        stage=Stage.DORMANT,
        changed_at=AT,
        cause="sweep",
        reason="silent for 4 rhythms",
    )

    made = Trigger.from_stage_changed("evt-2", payload)

    assert (made.event_type, made.stage, made.previous_stage, made.occurred_at) == (
        STAGE_CHANGED,
        Stage.DORMANT,
        Stage.AT_RISK,
        AT,
    )
    assert matched_ids(made) == ["dormant-wake-up"]


def test_a_trigger_from_an_order_is_first_only_when_the_caller_says_so():
    payload = OrderPlaced(
        order_id="o-1",
        customer_id="c-1",
        placed_at=AT,
        total=Money(amount="12.50", currency="EUR"),
    )

    made = Trigger.from_order_placed("evt-3", payload, is_first_order=True)

    assert (made.event_type, made.customer_id, made.occurred_at, made.is_first_order) == (
        ORDER_PLACED,
        "c-1",
        AT,
        True,
    )


def test_a_trigger_from_a_new_customer_uses_the_profile_creation_time():
    payload = CustomerCreated(
        customer=CustomerSnapshot(customer_id="c-7", created_at=AT, updated_at=AT)
    )

    made = Trigger.from_customer_created("evt-4", payload)

    assert (made.event_type, made.customer_id, made.occurred_at) == (CUSTOMER_CREATED, "c-7", AT)


# Activity and feedback triggers.


def test_a_complaint_matches_the_apology_and_an_abandoned_cart_the_reminder():
    complaint = trigger("feedback.recorded", feedback_kind="complaint")
    answer = trigger("feedback.recorded", feedback_kind="survey_answer", survey="nps")
    cart = trigger("activity.recorded", activity_type="cart_abandoned")
    view = trigger("activity.recorded", activity_type="page_view")

    assert matched_ids(complaint) == ["complaint-follow-up"]
    assert matched_ids(answer) == []
    assert matched_ids(cart) == ["cart-abandoned-reminder"]
    assert matched_ids(view) == []
    assert due_at(default("cart-abandoned-reminder"), cart) == AT + timedelta(hours=4)


@pytest.mark.parametrize(("score", "matches"), [(None, False), (0, True), (6, True), (7, False)])
def test_survey_score_bounds_match_only_answers_within_them(score, matches):
    detractors = rule(
        event_type="feedback.recorded",
        conditions=Conditions(surveys=frozenset({"nps"}), survey_score_max=6),
    )
    answer = trigger("feedback.recorded", feedback_kind="survey_answer", survey="nps")
    assert bool(matching_rules([detractors], replace(answer, survey_score=score))) is matches


def test_feedback_conditions_on_other_event_types_are_refused():
    wrong = rule(conditions=Conditions(feedback_kinds=frozenset({"complaint"})))
    unknown = rule(
        event_type="feedback.recorded",
        conditions=Conditions(
            feedback_kinds=frozenset({"praise"}), surveys=frozenset({"stars"}), survey_score_min=-1
        ),
    )
    assert "conditions.feedback_kinds" in problem_fields(wrong)
    assert {
        "conditions.feedback_kinds",
        "conditions.surveys",
        "conditions.survey_score_min",
    } <= problem_fields(unknown)


def test_feedback_conditions_round_trip_through_json():
    original = rule(
        event_type="activity.recorded",
        conditions=Conditions(activity_types=frozenset({"cart_abandoned"}), survey_score_max=6),
    )
    assert PlaybookRule.from_dict(json.loads(json.dumps(original.to_dict()))) == original
