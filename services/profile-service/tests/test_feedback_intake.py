"""Activity and feedback intake over HTTP: bounded, idempotent by report id, through the outbox."""

from __future__ import annotations

from typing import Any

import pytest

from crm_contracts import FeedbackRecorded, decode_event
from crm_shared.testing import read_topic
from profile_testing import Api


async def a_customer(api: Api, email: str = "fb@example.com") -> str:
    response = await api.post("/v1/customers", json={"email": email})
    assert response.status_code in (200, 201), response.text
    customer_id: str = response.json()["id"]
    return customer_id


def a_complaint(feedback_id: str = "fb-1", **changes: Any) -> dict[str, Any]:
    return {
        "feedback_id": feedback_id,
        "kind": "complaint",
        "occurred_at": "2026-11-20T14:03:00Z",
        "about": "late_delivery",
    } | changes


async def test_feedback_is_accepted_once_per_feedback_id(api: Api) -> None:
    customer_id = await a_customer(api)
    url = f"/v1/customers/{customer_id}/feedback"
    first = await api.post(url, json=a_complaint())
    assert first.status_code == 202, first.text
    assert first.json()["event_type"] == "feedback.recorded"
    again = await api.post(url, json=a_complaint())
    assert again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    changed = await api.post(url, json=a_complaint(about="damaged_item"))
    assert changed.status_code == 409
    assert changed.headers["content-type"] == "application/problem+json"


async def test_an_activity_is_accepted_once_per_activity_id(api: Api) -> None:
    customer_id = await a_customer(api)
    url = f"/v1/customers/{customer_id}/activities"
    activity = {
        "activity_id": "act-1",
        "activity_type": "cart_abandoned",
        "occurred_at": "2026-11-20T14:03:00Z",
        "properties": {"items": 2},
    }
    first = await api.post(url, json=activity)
    assert first.status_code == 202, first.text
    assert (await api.post(url, json=activity)).json()["duplicate"] is True


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (a_complaint(kind="survey_answer"), "score"),
        (a_complaint(kind="survey_answer", survey="nps", score=11), "score"),
        (a_complaint(kind="survey_answer", survey="stars", score=3), "survey"),
        (a_complaint(score=3), "score"),
        (a_complaint(kind="ticket_opened"), "ticket_id"),
        (a_complaint(kind="praise"), "kind"),
        (a_complaint(feedback_id="x" * 201), "feedback_id"),
        (a_complaint(about="Free text with PII"), "about"),
        (a_complaint(occurred_at="2026-11-20T14:03:00"), "occurred_at"),
    ],
)
async def test_bad_feedback_is_refused_naming_the_field(
    api: Api, body: dict[str, Any], field: str
) -> None:
    customer_id = await a_customer(api)
    response = await api.post(f"/v1/customers/{customer_id}/feedback", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(name.endswith(field) for name in fields), fields


async def test_bad_activities_are_refused_naming_the_field(api: Api) -> None:
    customer_id = await a_customer(api)
    body = {
        "activity_id": "act-1",
        "activity_type": "cart_abandoned",
        "occurred_at": "2026-11-20T14:03:00Z",
        "properties": {"nested": {"not": "allowed"}},
    }
    response = await api.post(f"/v1/customers/{customer_id}/activities", json=body)
    assert response.status_code == 422
    assert any("properties" in e["field"] for e in response.json()["errors"])


async def test_feedback_about_an_unknown_customer_is_not_found(api: Api) -> None:
    response = await api.post(
        "/v1/customers/00000000-0000-0000-0000-000000000000/feedback", json=a_complaint()
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.kafka
async def test_feedback_posted_twice_appears_once_on_the_activities_topic(
    api_with_broker: Api,
) -> None:
    api = api_with_broker
    customer_id = await a_customer(api, "kafka-fb@example.com")
    feedback_id = f"fb-{api.app.state.settings.service_name}"
    answer = a_complaint(feedback_id, kind="survey_answer", survey="nps", score=3, about=None)
    first = await api.post(f"/v1/customers/{customer_id}/feedback", json=answer)
    assert first.status_code == 202, first.text
    await api.post(f"/v1/customers/{customer_id}/feedback", json=answer)
    bootstrap = api.app.state.settings.kafka_bootstrap_servers
    records = await read_topic(bootstrap, "crm.activities", expect=1, settle=1.5)
    mine = [
        decode_event(r.value or b"")
        for r in records
        if getattr(decode_event(r.value or b"").data, "feedback_id", None) == feedback_id
    ]
    assert len(mine) == 1
    assert mine[0].id == first.json()["event_id"]
    assert isinstance(mine[0].data, FeedbackRecorded)
    assert mine[0].data.score == 3
    assert mine[0].subject == customer_id
