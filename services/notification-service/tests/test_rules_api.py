"""Playbook rules through the API: the shipped defaults, CRUD, validation naming every field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from crm_contracts import Stage
from crm_shared import Scope
from crm_shared.testing import ApiClient
from notification_testing import customer, feed, stage_changed

MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
DEFAULT_RULE_IDS = [
    "care-15d",
    "churned-win-back",
    "high-value-warning-task",
    "member-benefits-30d",
    "offer-40d-no-repeat",
    "warning-retention-offer",
    "welcome-first-order",
    "dormant-wake-up",
    "complaint-follow-up",
    "cart-abandoned-reminder",
]


def rule(**changes: Any) -> dict[str, Any]:
    """A valid rule document: an email nudge when a customer becomes at risk."""
    return {
        "rule_id": "at-risk-nudge",
        "name": "Nudge customers who turn at risk",
        "event_type": "lifecycle.stage_changed",
        "conditions": {"stages": ["at_risk"]},
        "template_id": "dormant-wake-up",
        "channels": ["email", "in_app"],
        "category": "marketing",
        "priority": 55,
        "delay": "PT2H",
        **changes,
    }


async def test_the_shipped_playbook_is_listed(notification_api: ApiClient):
    response = await notification_api.get("/v1/rules")

    assert response.status_code == 200
    rules = response.json()
    assert sorted(r["rule_id"] for r in rules) == sorted(DEFAULT_RULE_IDS)
    care = (await notification_api.get("/v1/rules/care-15d")).json()
    assert (care["delay"], care["category"], care["channels"]) == (
        "P15D",
        "service",
        ["email", "in_app"],
    )
    assert care["conditions"]["first_order_only"] is True
    assert care["conditions"]["stages"] is None


async def test_a_created_rule_reads_back_and_queues_messages(notification_api: ApiClient):
    response = await notification_api.post("/v1/rules", Scope.ADMIN, json=rule())

    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/v1/rules/at-risk-nudge"
    stored = (await notification_api.get("/v1/rules/at-risk-nudge")).json()
    assert stored == response.json()
    assert (stored["delay"], stored["priority"], stored["enabled"]) == ("PT2H", 55, True)
    assert stored["conditions"]["stages"] == ["at_risk"]
    assert stored["conditions"]["warning_statuses"] == ["open"]  # a default, filled in

    await feed(notification_api, [customer("c1", MORNING - timedelta(days=90))])
    await feed(notification_api, [stage_changed("c1", MORNING, Stage.AT_RISK, Stage.LOYAL)])
    log = await notification_api.get("/v1/notifications", params={"rule_id": "at-risk-nudge"})
    [queued] = log.json()["items"]
    assert queued["customer_id"] == "c1"
    assert datetime.fromisoformat(queued["due_at"]) == MORNING + timedelta(hours=2)


async def test_creating_a_rule_under_a_taken_id_is_a_conflict(notification_api: ApiClient):
    response = await notification_api.post(
        "/v1/rules", Scope.ADMIN, json=rule(rule_id="welcome-first-order")
    )

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    welcome = (await notification_api.get("/v1/rules/welcome-first-order")).json()
    assert welcome["event_type"] == "order.placed"


async def test_a_replaced_rule_is_whole_and_keeps_its_id(notification_api: ApiClient):
    body = rule(enabled=False)
    del body["rule_id"], body["priority"], body["delay"]

    response = await notification_api.put("/v1/rules/care-15d", Scope.ADMIN, json=body)

    assert response.status_code == 200, response.text
    care = (await notification_api.get("/v1/rules/care-15d")).json()
    assert care["rule_id"] == "care-15d"
    assert (care["enabled"], care["event_type"]) == (False, "lifecycle.stage_changed")
    # Left out: back to the defaults, not the old values (priority 20, P15D).
    assert (care["priority"], care["delay"]) == (0, "PT0S")


async def test_replacing_needs_the_paths_id_and_an_existing_rule(notification_api: ApiClient):
    renamed = await notification_api.put(
        "/v1/rules/care-15d", Scope.ADMIN, json=rule(rule_id="care-16d")
    )
    unknown = await notification_api.put(
        "/v1/rules/no-such-rule", Scope.ADMIN, json=rule(rule_id="no-such-rule")
    )

    assert renamed.status_code == 422
    assert [e["field"] for e in renamed.json()["errors"]] == ["rule_id"]
    assert unknown.status_code == 404
    assert (await notification_api.get("/v1/rules/no-such-rule")).status_code == 404


async def test_a_deleted_rule_is_gone(notification_api: ApiClient):
    admin = notification_api.as_(Scope.ADMIN)

    first = await notification_api.client.delete("/v1/rules/dormant-wake-up", headers=admin)
    again = await notification_api.client.delete("/v1/rules/dormant-wake-up", headers=admin)

    assert first.status_code == 204
    assert again.status_code == 404
    assert (await notification_api.get("/v1/rules/dormant-wake-up")).status_code == 404
    assert len((await notification_api.get("/v1/rules")).json()) == len(DEFAULT_RULE_IDS) - 1


async def test_an_invalid_rule_is_refused_naming_every_field_at_fault(
    notification_api: ApiClient,
):
    response = await notification_api.post(
        "/v1/rules",
        Scope.ADMIN,
        json=rule(
            rule_id="Not A Slug",
            name=" ",
            event_type="order.shipped",
            template_id="no-such-template",
            channels=["email", "email"],
            priority=-1,
            delay="-P1D",
            conditions={"stages": ["sleeping"], "churn_risk_min": 1.5},
        ),
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {
        "rule_id",
        "name",
        "event_type",
        "template_id",
        "channels.1",
        "priority",
        "delay",
        "conditions.stages",
        "conditions.churn_risk_min",
    }
    assert len((await notification_api.get("/v1/rules")).json()) == len(DEFAULT_RULE_IDS)


async def test_a_rule_whose_template_lacks_a_channels_text_is_refused(
    notification_api: ApiClient,
):
    # win-back-offer has email and SMS texts; a fallback to the inbox would fail when sent.
    response = await notification_api.post(
        "/v1/rules",
        Scope.ADMIN,
        json=rule(template_id="win-back-offer", channels=["sms", "in_app"]),
    )

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "channels.1"
    assert "in_app" in error["message"]


async def test_a_rule_of_the_wrong_shape_is_refused_by_field(notification_api: ApiClient):
    response = await notification_api.post(
        "/v1/rules",
        Scope.ADMIN,
        json=rule(priority="high", colour="blue", conditions={"tiers": "growth"}),
    )

    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"priority", "colour", "conditions.tiers"}


async def test_only_admins_change_the_playbook(notification_api: ApiClient):
    write = notification_api.as_(Scope.WRITE)

    created = await notification_api.post("/v1/rules", Scope.WRITE, json=rule())
    replaced = await notification_api.put("/v1/rules/care-15d", Scope.WRITE, json=rule())
    deleted = await notification_api.client.delete("/v1/rules/care-15d", headers=write)

    assert (created.status_code, replaced.status_code, deleted.status_code) == (403, 403, 403)
    assert (await notification_api.get("/v1/rules/care-15d")).json()["delay"] == "P15D"
