"""The domain's order refusals (a changed repeat, a refund beyond the order) answer the same
problem over HTTP and name the same field on the intake topic's dead-letter path."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_orders_api import a_placed_order, a_refund

from crm_contracts import InvalidEvent, decode_order_intake
from crm_shared import utc_now
from profile_service.events.order_intake import IntakeMessage, intake_batch
from profile_service.settings import ProfileSettings
from profile_testing import Api


async def test_a_changed_repeat_is_a_conflict_problem(api: Api) -> None:
    await api.post("/v1/orders", json=a_placed_order())
    changed = a_placed_order(total={"amount": "1.00", "currency": "USD"})
    response = await api.post("/v1/orders", json=changed)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://crm.example/problems/conflict"
    assert body["title"] == "Conflict"
    assert body["instance"] == "/v1/orders"
    assert body["detail"].startswith("order.placed:ord-1 was already accepted with different")
    assert "errors" not in body


async def test_a_refund_beyond_the_order_is_a_validation_problem(api: Api) -> None:
    await api.post("/v1/orders", json=a_placed_order())
    response = await api.post("/v1/orders", json=a_refund("ord-1", "r1", "60.00"))
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "https://crm.example/problems/validation-error"
    assert body["title"] == "Unprocessable content"
    assert body["errors"] == [{"field": "amount.amount", "message": body["detail"]}]
    assert "exceeds the 59.90 left to refund" in body["detail"]


async def apply_intake(api: Api, document: dict[str, Any]) -> None:
    settings: ProfileSettings = api.app.state.settings
    apply_batch = intake_batch(settings.order_policy, default_phone_region=None)
    message = IntakeMessage(
        id="m", document=decode_order_intake(json.dumps(document).encode()), received_at=utc_now()
    )
    async with api.app.state.runtime.sessions() as session, session.begin():
        await apply_batch(session, [message])


async def test_the_intake_topic_refuses_them_naming_the_same_field(api: Api) -> None:
    await api.post("/v1/orders", json=a_placed_order())
    with pytest.raises(InvalidEvent) as too_much:
        await apply_intake(api, a_refund("ord-1", "r1", "60.00"))
    assert too_much.value.field == "amount.amount"
    with pytest.raises(InvalidEvent) as changed:
        await apply_intake(api, a_placed_order(total={"amount": "1.00", "currency": "USD"}))
    assert changed.value.field is None
    assert "already accepted with different content" in changed.value.reason
