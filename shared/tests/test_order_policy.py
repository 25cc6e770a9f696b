"""check_order: the accounting currency and the time window, alike for events and documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_contracts import (
    ISO_4217_CURRENCIES,
    CancelledOrder,
    InvalidEvent,
    OrderCancelled,
    OrderFacts,
    OrderPlaced,
    OrderPolicy,
    OrderRefunded,
    PlacedOrder,
    RefundedOrder,
    check_order,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
POLICY = OrderPolicy(
    currency="USD", max_future_skew=timedelta(minutes=5), max_age=timedelta(days=30)
)


def money(amount: str = "20.00", currency: str = "USD") -> dict[str, str]:
    return {"amount": amount, "currency": currency}


def placed_event(**changes: Any) -> OrderPlaced:
    fields: dict[str, Any] = {
        "order_id": "ord-1",
        "customer_id": "c-1",
        "placed_at": NOW,
        "total": money(),
        "items": [{"sku": "A", "quantity": 2, "unit_price": money("10.00")}],
    }
    return OrderPlaced.model_validate(fields | changes)


def placed_document(**changes: Any) -> PlacedOrder:
    fields: dict[str, Any] = {
        "type": "order.placed",
        "order_id": "ord-1",
        "customer": {"email": "ada@example.com"},
        "placed_at": NOW,
        "total": money(),
    }
    return PlacedOrder.model_validate(fields | changes)


def refund_event(**changes: Any) -> OrderRefunded:
    fields: dict[str, Any] = {
        "order_id": "ord-1",
        "refund_id": "r-1",
        "customer_id": "c-1",
        "refunded_at": NOW,
        "amount": money("5.00"),
    }
    return OrderRefunded.model_validate(fields | changes)


def refused_field(order: OrderFacts, now: datetime = NOW) -> str | None:
    try:
        check_order(order, POLICY, now)
    except InvalidEvent as refusal:
        return refusal.field
    return None


def test_an_order_in_the_accounting_currency_and_in_the_window_passes() -> None:
    assert refused_field(placed_event()) is None
    assert refused_field(placed_document()) is None
    assert refused_field(refund_event()) is None


def test_an_order_in_another_currency_is_refused_naming_the_field() -> None:
    euros = placed_event(total=money(currency="EUR"), items=[])
    assert refused_field(euros) == "total.currency"
    assert refused_field(placed_document(total=money(currency="EUR"))) == "total.currency"
    assert refused_field(refund_event(amount=money("5.00", "GBP"))) == "amount.currency"


def test_a_line_in_another_currency_is_refused_even_without_the_models_own_check() -> None:
    order = placed_event()
    line = order.items[0].model_copy(
        update={"unit_price": order.total.model_copy(update={"currency": "EUR"})}
    )
    unchecked = order.model_copy(update={"items": [order.items[0], line]})
    assert refused_field(unchecked) == "items.1.unit_price.currency"


def test_the_reason_says_what_the_accounting_currency_is() -> None:
    with pytest.raises(InvalidEvent, match="USD, the accounting currency, not EUR"):
        check_order(placed_event(total=money(currency="EUR"), items=[]), POLICY, NOW)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(minutes=5), True),
        (timedelta(minutes=5, microseconds=1), False),
        (timedelta(days=365 * 100), False),
        (-timedelta(days=30), True),
        (-timedelta(days=30, seconds=1), False),
    ],
)
def test_order_times_lie_within_the_window_around_now(offset: timedelta, accepted: bool) -> None:
    moment = NOW + offset
    expected = None if accepted else "placed_at"
    assert refused_field(placed_event(placed_at=moment)) == expected
    assert refused_field(placed_document(placed_at=moment)) == expected
    refund_expected = None if accepted else "refunded_at"
    assert refused_field(refund_event(refunded_at=moment)) == refund_expected
    cancelled = OrderCancelled(order_id="o", customer_id="c", cancelled_at=moment)
    assert refused_field(cancelled) == (None if accepted else "cancelled_at")
    document = CancelledOrder(type="order.cancelled", order_id="o", cancelled_at=moment)
    assert refused_field(document) == (None if accepted else "cancelled_at")


def test_the_window_compares_moments_not_wall_clock_readings() -> None:
    # 12:04 in UTC written as 21:04 in Tokyo is within five minutes of noon UTC.
    tokyo = (NOW + timedelta(minutes=4)).astimezone(timezone(timedelta(hours=9)))
    assert refused_field(placed_event(placed_at=tokyo)) is None


def test_a_refund_document_is_judged_like_the_event() -> None:
    late = NOW + timedelta(hours=1)
    document = RefundedOrder(
        type="order.refunded",
        order_id="o",
        refund_id="r",
        refunded_at=late,
        amount={"amount": Decimal("1.00"), "currency": "USD"},  # type: ignore[arg-type]
    )
    assert refused_field(document) == refused_field(refund_event(refunded_at=late)) == "refunded_at"


_MOMENTS = st.datetimes(
    min_value=datetime(1901, 1, 1), max_value=datetime(2199, 1, 1), timezones=st.just(UTC)
)


@given(placed_at=_MOMENTS, now=_MOMENTS)
def test_any_time_is_accepted_exactly_when_it_lies_in_the_window(
    placed_at: datetime, now: datetime
) -> None:
    inside = now - POLICY.max_age <= placed_at <= now + POLICY.max_future_skew
    order = placed_event(placed_at=placed_at)
    assert (refused_field(order, now) is None) == inside
    assert (refused_field(placed_document(placed_at=placed_at), now) is None) == inside


@given(currency=st.sampled_from(sorted(ISO_4217_CURRENCIES)))
def test_any_currency_but_the_accounting_one_is_refused(currency: str) -> None:
    order = placed_event(total=money(currency=currency), items=[])
    assert (refused_field(order) is None) == (currency == POLICY.currency)
