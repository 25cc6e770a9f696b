"""The static rules of order events: summable money, one currency per order, bounded sizes.

These hold wherever an order comes from (a shop on Kafka, profile-service's HTTP intake) and
need neither a clock nor settings; the rules that do are in test_order_policy.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from crm_contracts import (
    InvalidEvent,
    Money,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    OrderRefunded,
    build_event,
    decode_event,
    encode_event,
)

NOW = datetime(2026, 11, 20, 14, 3, tzinfo=UTC)


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def a_line(**changes: Any) -> dict[str, Any]:
    return {"sku": "TEE", "quantity": 2, "unit_price": usd("10.00")} | changes


def placed(**changes: Any) -> dict[str, Any]:
    order: dict[str, Any] = {
        "order_id": "ord-1",
        "customer_id": "c-1",
        "placed_at": NOW,
        "total": usd("20.00"),
        "items": [a_line()],
    }
    return order | changes


def refunded(**changes: Any) -> dict[str, Any]:
    refund: dict[str, Any] = {
        "order_id": "ord-1",
        "refund_id": "r-1",
        "customer_id": "c-1",
        "refunded_at": NOW,
        "amount": usd("5.00"),
    }
    return refund | changes


def fields_refused(model: type[Any], document: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(document)
    return [".".join(str(part) for part in error["loc"]) for error in caught.value.errors()]


def test_a_free_order_and_free_lines_are_orders() -> None:
    free = OrderPlaced.model_validate(placed(total=usd("0"), items=[a_line(unit_price=usd("0"))]))
    assert free.total.amount == 0


def test_a_negative_total_is_refused_naming_the_amount() -> None:
    assert fields_refused(OrderPlaced, placed(total=usd("-0.01"))) == ["total.amount"]


def test_a_negative_unit_price_is_refused_naming_the_line() -> None:
    lines = [a_line(), a_line(unit_price=usd("-1.00"))]
    assert fields_refused(OrderPlaced, placed(items=lines)) == ["items.1.unit_price.amount"]


def test_every_line_is_priced_in_the_currency_of_the_total() -> None:
    lines = [
        a_line(),
        a_line(),
        a_line(),
        a_line(unit_price={"amount": "10.00", "currency": "EUR"}),
    ]
    assert fields_refused(OrderPlaced, placed(items=lines)) == ["items.3.unit_price.currency"]


def test_a_refund_gives_back_a_positive_amount() -> None:
    assert fields_refused(OrderRefunded, refunded(amount=usd("0"))) == ["amount.amount"]
    assert fields_refused(OrderRefunded, refunded(amount=usd("-5.00"))) == ["amount.amount"]
    assert OrderRefunded.model_validate(refunded(amount=usd("0.01"))).amount.amount == Decimal(
        "0.01"
    )


def test_an_order_holds_at_most_a_thousand_lines() -> None:
    assert len(OrderPlaced.model_validate(placed(items=[a_line()] * 1000)).items) == 1000
    assert fields_refused(OrderPlaced, placed(items=[a_line()] * 1001)) == ["items"]


def test_a_line_holds_at_most_a_million_units() -> None:
    assert OrderLine.model_validate(a_line(quantity=1_000_000)).quantity == 1_000_000
    assert fields_refused(OrderLine, a_line(quantity=1_000_001)) == ["quantity"]


@pytest.mark.parametrize(
    ("model", "document", "field"),
    [
        (OrderPlaced, placed(order_id="o" * 201), "order_id"),
        (OrderPlaced, placed(customer_id="c" * 37), "customer_id"),
        (OrderPlaced, placed(shop_id="s" * 201), "shop_id"),
        (OrderPlaced, placed(channel="w" * 201), "channel"),
        (OrderPlaced, placed(items=[a_line(sku="S" * 201)]), "items.0.sku"),
        (OrderPlaced, placed(items=[a_line(name="n" * 501)]), "items.0.name"),
        (OrderRefunded, refunded(refund_id="r" * 201), "refund_id"),
        (OrderRefunded, refunded(reason="r" * 501), "reason"),
        (
            OrderCancelled,
            {"order_id": "o", "customer_id": "c", "cancelled_at": NOW, "reason": "r" * 501},
            "reason",
        ),
    ],
)
def test_texts_and_ids_are_bounded(model: type[Any], document: dict[str, Any], field: str) -> None:
    assert fields_refused(model, document) == [field]


def test_an_event_with_a_mismatched_line_currency_is_refused_naming_the_field() -> None:
    good = build_event(OrderPlaced.model_validate(placed()), source="/shop", time=NOW)
    raw = encode_event(good).replace(b'"unit_price":{"amount":"10.00","currency":"USD"}', b"X")
    raw = raw.replace(b"X", b'"unit_price":{"amount":"10.00","currency":"GBP"}')
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw)
    assert caught.value.field == "data.items.0.unit_price.currency"


def test_models_built_from_plain_money_keep_working() -> None:
    order = OrderPlaced(
        order_id="ord-2",
        customer_id="c-1",
        placed_at=NOW,
        total=Money(amount=Decimal("12.50"), currency="USD"),
        items=[OrderLine(sku="A", quantity=1, unit_price=Money(amount=12, currency="USD"))],
    )
    assert order.items[0].unit_price.currency == order.total.currency
