"""What a rule achieved: its treated customers against its held-out ones, after the trigger.

A rule's *exposures* are the customers it fired for and assigned a group (see
``domain.holdout``), each with the start of its window and the customer's orders. The window
starts when the rule wanted its message sent: the trigger's time plus the rule's delay (so a
40-day offer is judged on what follows day 40, not on the 40 days before it could act). For
each customer the first exposure in the period counts (a group never flips, so a second
trigger adds nothing but a later window). Within ``window`` after its start:

- *repurchased*: at least one order placed after the start and at most ``window`` later that
  was not cancelled and kept some money after refunds;
- *revenue*: the sum of those orders' totals less their refunds (cancelled orders count 0,
  and a refund never makes an order negative).

Only customers whose window has closed by ``as_of`` are compared (the others are *pending*):
an open window would count a late trigger as no repurchase yet. For rules triggered by a
churn warning, each warning is *saved* when the customer repurchased within the window and
*lost* otherwise: notification-service sees the orders, so it judges by them, not by
lifecycle's later verdict.

Both groups are compared as assigned (intention to treat): a treated customer whose message
was suppressed for consent or the cap still counts as treated, so the uplift is what the rule
does as operated, and the comparison stays fair (the hash decides the group, nothing else).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from notification_service.domain.holdout import HOLDOUT, TREATMENT, Group
from notification_service.domain.uplift_statistics import (
    Uplift,
    mean_uplift,
    proportion_uplift,
)

__all__ = [
    "CHURN_WARNING_TRIGGER",
    "CustomerOutcome",
    "Exposure",
    "GroupOutcome",
    "OrderFact",
    "RuleEffect",
    "customer_outcome",
    "measure_effect",
]

CHURN_WARNING_TRIGGER: Final = "churn.warning"
_ZERO: Final = Decimal(0)


@dataclass(frozen=True)
class OrderFact:
    """One order of a customer as the report counts it: when, and what it kept after refunds."""

    placed_at: datetime
    total: Decimal
    refunded: Decimal = _ZERO
    cancelled: bool = False

    @property
    def net(self) -> Decimal:
        """What the order brought in: nothing when cancelled, never below zero."""
        return _ZERO if self.cancelled else max(_ZERO, self.total - self.refunded)


@dataclass(frozen=True)
class Exposure:
    """One customer a rule fired for: the group, when its window starts (trigger plus the
    rule's delay), the trigger's type and the customer's orders."""

    customer_id: str
    group: Group
    window_start: datetime
    trigger_type: str
    orders: tuple[OrderFact, ...] = ()


@dataclass(frozen=True)
class CustomerOutcome:
    """What one customer did within the window after the trigger."""

    repurchased: bool
    revenue: Decimal


@dataclass(frozen=True)
class GroupOutcome:
    """One group's figures over the customers whose window has closed."""

    customers: int
    repurchased: int
    revenue: Decimal
    warnings_saved: int
    warnings_lost: int

    @property
    def repurchase_rate(self) -> float | None:
        """Share of the group that bought again within the window (None for an empty group)."""
        return self.repurchased / self.customers if self.customers else None

    @property
    def revenue_per_customer(self) -> Decimal | None:
        """Revenue within the window divided by the group's customers."""
        return self.revenue / self.customers if self.customers else None


@dataclass(frozen=True)
class RuleEffect:
    """A rule's treated and held-out groups and the uplift between them (None when a group
    is too small: at least 1 customer each for the rate, 2 for revenue)."""

    treated: GroupOutcome
    held_out: GroupOutcome
    pending: int
    repurchase: Uplift | None
    revenue: Uplift | None
    warnings_judged: bool


def customer_outcome(
    window_start: datetime, orders: Iterable[OrderFact], window: timedelta
) -> CustomerOutcome:
    """Did the customer buy again in (start, start + window], and for how much (net)."""
    end = window_start + window
    within = [order for order in orders if window_start < order.placed_at <= end]
    revenue = sum((order.net for order in within), _ZERO)
    return CustomerOutcome(any(order.net > 0 for order in within), revenue)


def measure_effect(
    exposures: Iterable[Exposure],
    window: timedelta,
    as_of: datetime,
    confidence: float = 0.95,
) -> RuleEffect:
    """Treated against held out for one rule's ``exposures`` (see the module's definitions)."""
    if window <= timedelta(0):
        raise ValueError("window must be positive")
    first: dict[str, Exposure] = {}
    for exposure in exposures:
        known = first.get(exposure.customer_id)
        if known is None or exposure.window_start < known.window_start:
            first[exposure.customer_id] = exposure
    outcomes: dict[Group, list[tuple[Exposure, CustomerOutcome]]] = {TREATMENT: [], HOLDOUT: []}
    pending = 0
    for exposure in first.values():
        if exposure.window_start + window > as_of:
            pending += 1
            continue
        outcome = customer_outcome(exposure.window_start, exposure.orders, window)
        outcomes[exposure.group].append((exposure, outcome))
    treated, held_out = _group(outcomes[TREATMENT]), _group(outcomes[HOLDOUT])
    repurchase = None
    if treated.customers and held_out.customers:
        repurchase = proportion_uplift(
            treated.repurchased,
            treated.customers,
            held_out.repurchased,
            held_out.customers,
            confidence,
        )
    revenue = None
    if treated.customers >= 2 and held_out.customers >= 2:
        revenue = mean_uplift(
            _revenues(outcomes[TREATMENT]), _revenues(outcomes[HOLDOUT]), confidence
        )
    judged = any(e.trigger_type == CHURN_WARNING_TRIGGER for e in first.values())
    return RuleEffect(treated, held_out, pending, repurchase, revenue, judged)


def _group(members: Sequence[tuple[Exposure, CustomerOutcome]]) -> GroupOutcome:
    warnings = [o for e, o in members if e.trigger_type == CHURN_WARNING_TRIGGER]
    return GroupOutcome(
        customers=len(members),
        repurchased=sum(1 for _, outcome in members if outcome.repurchased),
        revenue=sum((outcome.revenue for _, outcome in members), _ZERO),
        warnings_saved=sum(1 for outcome in warnings if outcome.repurchased),
        warnings_lost=sum(1 for outcome in warnings if not outcome.repurchased),
    )


def _revenues(members: Sequence[tuple[Exposure, CustomerOutcome]]) -> list[float]:
    return [float(outcome.revenue) for _, outcome in members]
