"""Activity and feedback triggers: an apology after a complaint, a reminder after an abandoned
cart, both under the same consent, cap and quiet-hour policy as every other message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from notification_servers import SmtpSink
from sqlalchemy import select

from crm_contracts import ActivityRecorded, FeedbackRecorded
from crm_shared import Scope
from crm_shared.testing import ApiClient
from notification_service.db.models import Notification
from notification_testing import churn_warning, customer, deliver, event, feed, order

MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)  # 10:00 in Berlin


def complaint(customer_id: str, feedback_id: str, at: datetime, **facts: Any):
    payload = FeedbackRecorded(
        customer_id=customer_id,
        feedback_id=feedback_id,
        kind=facts.pop("kind", "complaint"),
        occurred_at=at,
        **facts,
    )
    return event(payload, at)


def cart_abandoned(customer_id: str, activity_id: str, at: datetime):
    payload = ActivityRecorded(
        customer_id=customer_id,
        activity_id=activity_id,
        activity_type="cart_abandoned",
        occurred_at=at,
        properties={"items": 2},
    )
    return event(payload, at)


async def notifications(api: ApiClient) -> list[Notification]:
    async with api.app.state.runtime.sessions() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.created_at)))


async def test_a_complaint_sends_one_apology_as_a_service_message(
    notification_api: ApiClient, mail: SmtpSink
):
    # No marketing consent at all: a service follow-up about the complaint still goes.
    await feed(notification_api, [customer("c1", MORNING - timedelta(days=30), marketing=())])
    sent_twice = complaint("c1", "fb-1", MORNING, about="late_delivery")
    await feed(notification_api, [sent_twice, sent_twice])

    await deliver(notification_api, MORNING + timedelta(minutes=1))

    [apology] = await notifications(notification_api)
    assert (apology.rule_id, apology.category, apology.status) == (
        "complaint-follow-up",
        "service",
        "sent",
    )
    assert apology.trigger_facts["feedback"]["about"] == "late_delivery"
    assert len(mail.messages) == 1
    assert "sorry" in mail.messages[0].part("text/plain")


async def test_a_complaint_sent_again_under_a_new_event_id_is_one_apology(
    notification_api: ApiClient, mail: SmtpSink
):
    # Shops publish feedback themselves: a retry may wrap the same report in a new envelope.
    await feed(notification_api, [customer("c1", MORNING - timedelta(days=30), marketing=())])
    first = complaint("c1", "fb-1", MORNING)
    again = complaint("c1", "fb-1", MORNING)
    assert first.id != again.id
    await feed(notification_api, [first])
    await feed(notification_api, [again])

    await deliver(notification_api, MORNING + timedelta(minutes=1))

    [apology] = await notifications(notification_api)
    assert apology.rule_id == "complaint-follow-up"
    assert len(mail.messages) == 1


async def test_an_abandoned_cart_is_reminded_four_hours_later_unless_the_customer_ordered(
    notification_api: ApiClient, mail: SmtpSink
):
    await feed(notification_api, [customer("c1", MORNING - timedelta(days=30))])
    await feed(notification_api, [customer("c2", MORNING - timedelta(days=30))])
    await feed(
        notification_api,
        [cart_abandoned("c1", "a-1", MORNING), cart_abandoned("c2", "a-2", MORNING)],
    )
    await feed(notification_api, [order("c2", "o-2", MORNING + timedelta(hours=1))])

    await deliver(notification_api, MORNING + timedelta(hours=2))
    assert not [m for m in mail.messages if "cart" in m.part("text/plain")]  # not due yet
    await deliver(notification_api, MORNING + timedelta(hours=4, minutes=1))

    by_customer = {
        n.customer_id: n
        for n in await notifications(notification_api)
        if n.rule_id == "cart-abandoned-reminder"
    }
    assert (by_customer["c1"].status, by_customer["c1"].category) == ("sent", "marketing")
    assert (by_customer["c2"].status, by_customer["c2"].reason) == (
        "suppressed",
        "no_longer_applies",
    )
    assert [m.rcpt_tos for m in mail.messages if "cart" in m.part("text/plain")] == [
        ["ada@example.com"]
    ]


async def test_a_cart_reminder_needs_marketing_consent_and_respects_the_cap(
    notification_api: ApiClient, mail: SmtpSink
):
    await feed(notification_api, [customer("no-consent", MORNING, marketing=())])
    await feed(notification_api, [customer("capped", MORNING - timedelta(days=60))])
    await feed(notification_api, [churn_warning("capped", MORNING)])  # an offer goes first
    await deliver(notification_api, MORNING + timedelta(minutes=1))
    await feed(
        notification_api,
        [
            cart_abandoned("no-consent", "a-1", MORNING),
            cart_abandoned("capped", "a-2", MORNING),
        ],
    )

    await deliver(notification_api, MORNING + timedelta(hours=4, minutes=1))

    reminders = {
        n.customer_id: (n.status, n.reason)
        for n in await notifications(notification_api)
        if n.rule_id == "cart-abandoned-reminder"
    }
    assert reminders["no-consent"] == ("suppressed", "no_consent")
    assert reminders["capped"][0] in ("scheduled", "suppressed")  # deferred or capped, not sent
    assert reminders["capped"][0] != "sent"


async def test_a_rule_can_follow_up_detractors_only(notification_api: ApiClient, mail: SmtpSink):
    rule = {
        "rule_id": "detractor-call",
        "name": "Call detractors",
        "event_type": "feedback.recorded",
        "conditions": {
            "feedback_kinds": ["survey_answer"],
            "surveys": ["nps"],
            "survey_score_max": 6,
        },
        "template_id": "complaint-follow-up",
        "channels": ["email"],
        "category": "service",
    }
    response = await notification_api.post("/v1/rules", Scope.ADMIN, json=rule)
    assert response.status_code == 201, response.text
    await feed(notification_api, [customer("c1", MORNING - timedelta(days=30))])
    await feed(
        notification_api,
        [
            complaint("c1", "fb-1", MORNING, kind="survey_answer", survey="nps", score=9),
            complaint("c1", "fb-2", MORNING, kind="survey_answer", survey="csat", score=2),
            complaint("c1", "fb-3", MORNING, kind="survey_answer", survey="nps", score=4),
        ],
    )

    rules_fired = [n.rule_id for n in await notifications(notification_api)]
    assert rules_fired == ["detractor-call"]


async def test_rules_on_feedback_facts_are_validated(notification_api: ApiClient):
    rule = {
        "rule_id": "bad",
        "name": "Bad",
        "event_type": "order.placed",
        "conditions": {"feedback_kinds": ["praise"], "survey_score_max": 11},
        "template_id": "complaint-follow-up",
        "channels": ["email"],
        "category": "service",
    }
    response = await notification_api.post("/v1/rules", Scope.ADMIN, json=rule)
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert {"conditions.feedback_kinds", "conditions.survey_score_max"} <= fields
