"""Order intake over HTTP: validated, idempotent by order id, published through the outbox."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_contracts import OrderPlaced, decode_event
from crm_shared.testing import read_topic
from profile_testing import Api


def a_placed_order(order_id: str = "ord-1", **changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "type": "order.placed",
        "order_id": order_id,
        "customer": {"external_id": "shop:77", "email": "buyer@example.com"},
        "placed_at": "2026-11-20T14:03:00Z",
        "total": {"amount": "59.90", "currency": "USD"},
        "items": [
            {"sku": "TEE", "quantity": 2, "unit_price": {"amount": "29.95", "currency": "USD"}}
        ],
    }
    order.update(changes)
    return order


def a_refund(order_id: str, refund_id: str, amount: str) -> dict[str, Any]:
    return {
        "type": "order.refunded",
        "order_id": order_id,
        "refund_id": refund_id,
        "refunded_at": "2026-11-22T09:00:00Z",
        "amount": {"amount": amount, "currency": "USD"},
    }


async def test_an_order_is_accepted_once_and_creates_its_customer(api: Api) -> None:
    first = await api.post("/v1/orders", json=a_placed_order())
    assert first.status_code == 202, first.text
    again = await api.post("/v1/orders", json=a_placed_order())
    assert again.status_code == 200
    assert again.json() == {**first.json(), "duplicate": True}
    customer = (await api.get(f"/v1/customers/{first.json()['customer_id']}")).json()
    assert customer["email"] == "buyer@example.com"


async def test_a_repost_with_different_content_is_a_conflict(api: Api) -> None:
    await api.post("/v1/orders", json=a_placed_order())
    changed = a_placed_order(total={"amount": "1.00", "currency": "USD"})
    response = await api.post("/v1/orders", json=changed)
    assert response.status_code == 409


async def test_refunds_are_limited_to_what_was_paid(api: Api) -> None:
    placed = (await api.post("/v1/orders", json=a_placed_order())).json()
    ok = await api.post("/v1/orders", json=a_refund("ord-1", "r1", "50.00"))
    assert ok.status_code == 202
    assert ok.json()["customer_id"] == placed["customer_id"]
    too_much = await api.post("/v1/orders", json=a_refund("ord-1", "r2", "10.00"))
    assert too_much.status_code == 422
    assert too_much.json()["errors"][0]["field"] == "amount.amount"
    unknown = await api.post("/v1/orders", json=a_refund("ord-unknown", "r1", "5.00"))
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "customer"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total": {"amount": 12.5, "currency": "USD"}}, "total.amount"),
        ({"total": {"amount": "12.50", "currency": "euro"}}, "total.currency"),
        ({"placed_at": "2026-11-20T14:03:00"}, "placed_at"),
        ({"customer": {"first_name": "no identity"}}, "customer"),
        ({"type": "order.teleported"}, ""),
    ],
)
async def test_invalid_orders_are_refused_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    order = copy.deepcopy(a_placed_order())
    order.update(change)
    response = await api.post("/v1/orders", json=order)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert any(field in error["field"] for error in response.json()["errors"])


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def in_(minutes: float) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total": usd("-59.90")}, "total.amount"),
        ({"total": {"amount": "59.90", "currency": "QQQ"}}, "total.currency"),
        ({"total": {"amount": "59.90", "currency": "XXX"}}, "total.currency"),
        (
            {"items": [{"sku": "TEE", "quantity": 1, "unit_price": usd("-1.00")}]},
            "items.0.unit_price.amount",
        ),
        (
            {
                "items": [
                    {"sku": "TEE", "quantity": 1, "unit_price": usd("29.95")},
                    {
                        "sku": "CAP",
                        "quantity": 1,
                        "unit_price": {"amount": "29.95", "currency": "EUR"},
                    },
                ]
            },
            "items.1.unit_price.currency",
        ),
        ({"placed_at": "0001-01-01T00:00:00+14:00"}, "placed_at"),
        ({"placed_at": "9999-12-31T23:59:59Z"}, "placed_at"),
        ({"total": usd("1000000000000000000000000000000")}, "total.amount"),
        ({"items": [{"sku": "TEE", "quantity": 1, "unit_price": usd("1.00")}] * 1001}, "items"),
    ],
)
async def test_orders_no_service_could_account_for_are_refused_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    response = await api.post("/v1/orders", json=a_placed_order(**change))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = [error["field"] for error in response.json()["errors"]]
    assert any(name.endswith(field) for name in fields), fields


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"total": {"amount": "59.90", "currency": "EUR"}, "items": []}, "total.currency"),
        ({"placed_at": in_(24 * 60)}, "placed_at"),
    ],
)
async def test_orders_outside_the_deployments_policy_are_refused_naming_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    response = await api.post("/v1/orders", json=a_placed_order(**change))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [{"field": field, "message": response.json()["detail"]}]


async def test_a_refund_in_a_foreign_currency_or_from_the_future_is_refused(api: Api) -> None:
    await api.post("/v1/orders", json=a_placed_order())
    foreign = a_refund("ord-1", "r1", "5.00") | {"amount": {"amount": "5.00", "currency": "GBP"}}
    refused = await api.post("/v1/orders", json=foreign)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "amount.currency"
    future = a_refund("ord-1", "r2", "5.00") | {"refunded_at": in_(60)}
    refused = await api.post("/v1/orders", json=future)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "refunded_at"
    free = await api.post("/v1/orders", json=a_refund("ord-1", "r3", "0.00"))
    assert free.status_code == 422


async def test_an_order_a_minute_ahead_of_our_clock_is_within_the_skew(api: Api) -> None:
    response = await api.post("/v1/orders", json=a_placed_order(placed_at=in_(1)))
    assert response.status_code == 202, response.text


async def test_the_documented_example_is_accepted(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    body = schema["paths"]["/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
    (example,) = body["schema"]["examples"]
    response = await api.post("/v1/orders", json=example)
    assert response.status_code == 202, response.text


@pytest.mark.kafka
async def test_an_order_posted_twice_appears_once_on_the_orders_topic(
    api_with_broker: Api,
) -> None:
    api = api_with_broker
    order_id = f"ord-{api.app.state.settings.service_name}"
    first = await api.post("/v1/orders", json=a_placed_order(order_id))
    await api.post("/v1/orders", json=a_placed_order(order_id))
    bootstrap = api.app.state.settings.kafka_bootstrap_servers
    records = await read_topic(bootstrap, "crm.orders", expect=1, settle=1.5)
    mine = [r for r in records if decode_event(r.value or b"").data.order_id == order_id]  # type: ignore[union-attr]
    assert len(mine) == 1
    event = decode_event(mine[0].value or b"")
    assert event.id == first.json()["event_id"]
    assert event.type == "order.placed"
    assert isinstance(event.data, OrderPlaced)
    assert str(event.data.total.amount) == "59.90"
    assert mine[0].key == first.json()["customer_id"].encode()
