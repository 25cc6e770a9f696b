"""The edge policy for orders: the rules that depend on the deployment and the moment of judgement.

Every edge that takes an order applies `check_order`, so an order is judged alike wherever it
enters: profile-service's HTTP intake and its `crm.order-intake` consumer (now = when it was
received), and every consumer of `crm.orders` (now = the Kafka record's timestamp, the same for
every consumer group, so scoring, lifecycle and notification agree on every event, whenever
they read it). The static rules (no negative money, one currency per order, bounded sizes) are
the models' own.

Currency policy: a deployment keeps its books in ONE accounting currency (setting `currency`,
default USD). An order, refund or line in any other currency is refused at every edge; the CRM
holds no exchange rates. A shop selling in several currencies converts each order into the
accounting currency at the rate it booked, before sending it.

Time window: an order's own time (placed, refunded, cancelled) lies between `max_age` before now
and `max_future_skew` after it (a small allowance for clocks that run ahead).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from crm_contracts._errors import InvalidEvent
from crm_contracts._orders import (
    OrderCancellation,
    OrderFacts,
    OrderPlacement,
    OrderRefund,
)
from crm_contracts._payload import Money


@dataclass(frozen=True)
class OrderPolicy:
    """What a deployment accepts: its accounting currency and the window of order times."""

    currency: str
    max_future_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=14_610)


def check_order(order: OrderFacts, policy: OrderPolicy, now: datetime) -> None:
    """Refuse an order the deployment cannot account for: raise `InvalidEvent` naming the field.

    `now` is the moment of judgement (timezone-aware): the request's arrival, or the Kafka
    record's timestamp.
    """
    if isinstance(order, OrderPlacement):
        _check_currency(order.total, "total.currency", policy)
        for number, line in enumerate(order.items):
            # The field's name is written only for a refusal: every consumer judges every order.
            if line.unit_price.currency != policy.currency:
                _check_currency(line.unit_price, f"items.{number}.unit_price.currency", policy)
        check_moment(order.placed_at, "placed_at", policy, now)
    elif isinstance(order, OrderRefund):
        _check_currency(order.amount, "amount.currency", policy)
        check_moment(order.refunded_at, "refunded_at", policy, now)
    elif isinstance(order, OrderCancellation):
        check_moment(order.cancelled_at, "cancelled_at", policy, now)


def check_moment(moment: datetime, field: str, policy: OrderPolicy, now: datetime) -> None:
    """Refuse a time outside [now - max_age, now + max_future_skew], naming `field`."""
    latest = now + policy.max_future_skew
    if moment > latest:
        raise InvalidEvent(
            f"{field} {moment.isoformat()} lies in the future: more than"
            f" {_seconds(policy.max_future_skew)} s after {now.isoformat()}",
            field=field,
        )
    if moment < now - policy.max_age:
        raise InvalidEvent(
            f"{field} {moment.isoformat()} is older than the {policy.max_age.days} days"
            f" accepted before {now.isoformat()}",
            field=field,
        )


def _check_currency(money: Money, field: str, policy: OrderPolicy) -> None:
    if money.currency != policy.currency:
        raise InvalidEvent(
            f"{field}: amounts must be in {policy.currency}, the accounting currency, not"
            f" {money.currency}; convert at the rate the shop booked",
            field=field,
        )


def _seconds(span: timedelta) -> str:
    return format(span.total_seconds(), "g")
