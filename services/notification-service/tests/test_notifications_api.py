"""The delivery log through the API (filters, pages) and send-now for one customer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from notification_servers import SmtpSink

from crm_contracts import Stage
from crm_shared import Scope, utc_now
from crm_shared.testing import ApiClient
from notification_testing import churn_warning, customer, deliver, feed, order, stage_changed

# 10:00 in Berlin: outside quiet hours.
MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def after_the_wall_clock() -> datetime:
    """A delivery time past anything send-now queued (due at the wall clock's now), at 10:00
    UTC: outside quiet hours in Berlin."""
    return (utc_now() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)


async def log(api: ApiClient, **filters: Any) -> list[dict[str, Any]]:
    response = await api.get("/v1/notifications", params=filters)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def send(api: ApiClient, scope: Scope = Scope.ADMIN, **body: Any) -> Any:
    return await api.post("/v1/notifications/send", scope, json=body)


async def test_the_log_lists_messages_newest_first_and_filters_them(
    notification_api: ApiClient,
):
    joined = MORNING - timedelta(days=30)
    await feed(notification_api, [customer("c1", joined), customer("c2", joined)])
    await feed(notification_api, [churn_warning("c1", MORNING)])
    await feed(notification_api, [churn_warning("c2", MORNING, action="account_manager_task")])
    between = utc_now()
    await feed(notification_api, [stage_changed("c1", MORNING, Stage.DORMANT, Stage.AT_RISK)])

    everything = await log(notification_api)

    assert [(n["customer_id"], n["rule_id"]) for n in everything] == [
        ("c1", "dormant-wake-up"),
        ("c2", "high-value-warning-task"),
        ("c1", "warning-retention-offer"),
    ]
    assert {n["status"] for n in everything} == {"scheduled"}
    assert [n["rule_id"] for n in await log(notification_api, customer_id="c2")] == [
        "high-value-warning-task"
    ]
    assert [n["customer_id"] for n in await log(notification_api, rule_id="dormant-wake-up")] == [
        "c1"
    ]
    assert len(await log(notification_api, created_from=between.isoformat())) == 1
    assert len(await log(notification_api, created_to=between.isoformat())) == 2
    # A time without offset is UTC.
    naive = between.replace(tzinfo=None).isoformat()
    assert len(await log(notification_api, created_from=naive)) == 1

    await deliver(notification_api, MORNING + timedelta(minutes=1))

    [sent] = await log(notification_api, status="sent")
    assert (sent["rule_id"], sent["channel"], sent["recipient"]) == (
        "warning-retention-offer",
        "email",
        "ada@example.com",
    )
    assert sent["subject"] == "Something for you"
    assert sent["attempts"] == 1
    assert sent["finished_at"] is not None
    assert [n["notification_id"] for n in await log(notification_api, channel="email")] == [
        sent["notification_id"]
    ]
    task = (await log(notification_api, customer_id="c2"))[0]
    # No account-manager hook is configured in the tests.
    assert (task["status"], task["reason"]) == ("suppressed", "no_contact")
    assert await log(notification_api, status="sending") == []


async def test_the_log_pages_through_messages_queued_in_the_same_instant(
    notification_api: ApiClient,
):
    await feed(notification_api, [customer("c1", MORNING), order("c1", "o1", MORNING)])
    everything = await log(notification_api)
    assert len(everything) == 4  # welcome, care, benefits and offer: one insert, one time

    seen: list[str] = []
    cursor = None
    for _ in range(4):
        params: dict[str, Any] = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        page = (await notification_api.get("/v1/notifications", params=params)).json()
        seen += [n["notification_id"] for n in page["items"]]
        cursor = page["next_cursor"]

    assert seen == [n["notification_id"] for n in everything]
    assert cursor is None
    forged = await notification_api.get("/v1/notifications", params={"cursor": "bm9wZQ"})
    assert forged.status_code == 422
    assert forged.json()["errors"][0]["field"] == "cursor"


async def test_a_notification_is_read_by_id(notification_api: ApiClient):
    await feed(notification_api, [customer("c1", MORNING), churn_warning("c1", MORNING)])
    [listed] = await log(notification_api)

    found = await notification_api.get(f"/v1/notifications/{listed['notification_id']}")
    missing = await notification_api.get("/v1/notifications/no-such-id")

    assert found.json() == listed
    assert found.json()["trigger_type"] == "churn.warning"
    assert missing.status_code == 404


async def test_send_now_delivers_one_email_to_the_customer(
    notification_api: ApiClient, mail: SmtpSink
):
    await feed(notification_api, [customer("c1", MORNING, email="grace@example.com")])

    response = await send(
        notification_api, customer_id="c1", template_id="welcome-first-order", channel="email"
    )

    assert response.status_code == 202, response.text
    queued = response.json()
    assert (queued["status"], queued["rule_id"], queued["category"]) == (
        "scheduled",
        None,
        "service",
    )
    assert response.headers["location"] == f"/v1/notifications/{queued['notification_id']}"
    assert mail.messages == []  # the delivery loop sends it, not the request

    await deliver(notification_api, after_the_wall_clock())
    await deliver(notification_api, after_the_wall_clock() + timedelta(minutes=1))

    assert len(mail.messages) == 1
    assert mail.messages[0].rcpt_tos == ["grace@example.com"]
    assert mail.messages[0].message["Subject"] == "Thank you for your first order"
    sent = (await notification_api.get(f"/v1/notifications/{queued['notification_id']}")).json()
    assert (sent["status"], sent["channel"]) == ("sent", "email")


async def test_a_retried_send_now_with_the_same_key_queues_one_message(
    notification_api: ApiClient, mail: SmtpSink
):
    await feed(notification_api, [customer("c1", MORNING)])
    body = {"customer_id": "c1", "template_id": "welcome-first-order", "channel": "email"}
    key = {"Idempotency-Key": "try-welcome-1"}

    first = await notification_api.post(
        "/v1/notifications/send", Scope.ADMIN, json=body, headers=key
    )
    retried = await notification_api.post(
        "/v1/notifications/send", Scope.ADMIN, json=body, headers=key
    )
    misused = await notification_api.post(
        "/v1/notifications/send",
        Scope.ADMIN,
        json={**body, "template_id": "first-order-care"},
        headers=key,
    )

    assert (first.status_code, retried.status_code) == (202, 202)
    assert retried.json()["notification_id"] == first.json()["notification_id"]
    assert misused.status_code == 422
    assert misused.json()["errors"][0]["field"] == "Idempotency-Key"
    assert len(await log(notification_api)) == 1
    await deliver(notification_api, after_the_wall_clock())
    assert len(mail.messages) == 1


async def test_send_now_refuses_what_could_not_be_delivered(notification_api: ApiClient):
    await feed(notification_api, [customer("c1", MORNING)])

    unknown_customer = await send(
        notification_api, customer_id="nobody", template_id="welcome-first-order", channel="email"
    )
    no_text = await send(
        notification_api, customer_id="c1", template_id="win-back-offer", channels=["sms", "in_app"]
    )
    no_template = await send(
        notification_api, customer_id="c1", template_id="no-such-template", channel="email"
    )
    two_ways = await send(
        notification_api,
        customer_id="c1",
        template_id="welcome-first-order",
        channel="email",
        channels=["email"],
    )

    assert unknown_customer.status_code == 404
    assert no_text.status_code == 422
    assert [e["field"] for e in no_text.json()["errors"]] == ["channels.1"]
    assert [e["field"] for e in no_template.json()["errors"]] == ["template_id"]
    assert two_ways.status_code == 422
    assert await log(notification_api) == []


async def test_only_admins_send_now(notification_api: ApiClient):
    await feed(notification_api, [customer("c1", MORNING)])

    response = await send(
        notification_api,
        Scope.WRITE,
        customer_id="c1",
        template_id="welcome-first-order",
        channel="email",
    )

    assert response.status_code == 403
    assert await log(notification_api) == []


async def test_a_marketing_template_sent_now_as_service_is_refused_and_needs_consent(
    notification_api: ApiClient, mail: SmtpSink
):
    # No marketing consent at all: an offer must not reach this customer.
    await feed(notification_api, [customer("c1", MORNING, marketing=())])

    as_service = await send(
        notification_api,
        customer_id="c1",
        template_id="retention-offer",
        channel="email",
        category="service",
    )
    unsaid = await send(
        notification_api, customer_id="c1", template_id="retention-offer", channel="email"
    )

    assert as_service.status_code == 422, as_service.text
    assert [e["field"] for e in as_service.json()["errors"]] == ["category"]
    assert unsaid.status_code == 202, unsaid.text
    assert unsaid.json()["category"] == "marketing"
    await deliver(notification_api, after_the_wall_clock())
    assert mail.messages == []
    [held] = await log(notification_api)
    assert (held["status"], held["reason"]) == ("suppressed", "no_consent")


async def test_a_rule_takes_its_template_category(notification_api: ApiClient):
    rule = {
        "rule_id": "offer-as-service",
        "name": "An offer called a service",
        "event_type": "churn.warning",
        "template_id": "retention-offer",
        "channels": ["email"],
        "category": "service",
    }

    refused = await notification_api.post("/v1/rules", Scope.ADMIN, json=rule)
    accepted = await notification_api.post(
        "/v1/rules", Scope.ADMIN, json={**rule, "category": "marketing"}
    )

    assert refused.status_code == 422, refused.text
    assert [e["field"] for e in refused.json()["errors"]] == ["category"]
    assert accepted.status_code == 201, accepted.text


async def test_a_template_category_cannot_change_under_the_rules_that_send_it(
    notification_api: ApiClient,
):
    path = "/v1/templates/retention-offer/email"
    stored = (await notification_api.get("/v1/templates/retention-offer")).json()
    parts = stored["texts"]["email"]

    relabelled = await notification_api.put(
        path, Scope.ADMIN, json={"parts": parts, "category": "service"}
    )
    kept = await notification_api.put(path, Scope.ADMIN, json={"parts": parts})
    fresh = await notification_api.put(
        "/v1/templates/order-shipped/email",
        Scope.ADMIN,
        json={"parts": {"subject": "Shipped", "text_body": "On its way."}},
    )

    assert stored["category"] == "marketing"
    assert relabelled.status_code == 409, relabelled.text
    assert relabelled.json()["rules"] == ["warning-retention-offer"]
    assert (kept.status_code, kept.json()["category"]) == (200, "marketing")
    assert (fresh.status_code, fresh.json()["category"]) == (201, "marketing")


async def test_outcomes_count_messages_per_rule_status_and_suppression_reason(
    notification_api: ApiClient,
):
    joined = MORNING - timedelta(days=30)
    await feed(notification_api, [customer("c1", joined), customer("c2", joined)])
    await feed(notification_api, [churn_warning("c1", MORNING)])
    await feed(notification_api, [churn_warning("c2", MORNING, action="account_manager_task")])
    await deliver(notification_api, MORNING + timedelta(minutes=1))

    response = await notification_api.get("/v1/notifications/outcomes")

    assert response.status_code == 200, response.text
    assert response.json() == [
        {
            "rule_id": "high-value-warning-task",
            "status": "suppressed",
            "reason": "no_contact",
            "messages": 1,
        },
        {"rule_id": "warning-retention-offer", "status": "sent", "reason": None, "messages": 1},
    ]
    later = utc_now().isoformat()  # after every message was created
    none_since = await notification_api.get(
        "/v1/notifications/outcomes", params={"created_from": later}
    )
    assert none_since.json() == []
    backwards = await notification_api.get(
        "/v1/notifications/outcomes",
        params={"created_from": later, "created_to": MORNING.isoformat()},
    )
    assert backwards.status_code == 422
