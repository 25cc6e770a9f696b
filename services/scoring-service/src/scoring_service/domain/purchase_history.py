"""What the models need per customer, computed from the purchase ledger as of a given day.

Same-day purchases count once (the models count purchase *days*); times are in whole days.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from scoring_service.domain.collapsed_histories import CollapsedHistories, collapse

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]

DAYS_PER_WEEK = 7.0


@dataclass(frozen=True)
class PurchaseLedger:
    """Orders as parallel arrays: customer index, purchase day (days since 1970), amount.

    A row may stand for several orders of one customer on one day (the purchase summaries
    hold a customer's orders merged per day, their amounts summed): `orders` then counts them.
    None: one order a row.
    """

    customer: Ints
    day: Ints
    amount: Floats
    orders: Ints | None = None

    def __post_init__(self) -> None:
        if not (len(self.customer) == len(self.day) == len(self.amount)):
            raise ValueError("ledger arrays must have the same length")
        if self.orders is not None and len(self.orders) != len(self.customer):
            raise ValueError("ledger arrays must have the same length")

    def rows(self, which: NDArray[np.bool_] | Ints) -> PurchaseLedger:
        """The rows a mask or an index array picks, in that order."""
        orders = None if self.orders is None else self.orders[which]
        return PurchaseLedger(self.customer[which], self.day[which], self.amount[which], orders)


@dataclass(frozen=True)
class CustomerHistories:
    """Per-customer purchase history at `as_of_day`, for customers who had bought by then.

    `customer` indexes the ledger's customers; the model inputs are in weeks, as in the
    published BG/NBD and Gamma-Gamma figures. Derived arrays are computed once and kept:
    callers index them customer by customer.
    """

    as_of_day: int
    customer: Ints
    first_day: Ints
    last_day: Ints
    purchase_days: Ints
    order_count: Ints
    total_spend: Floats
    spend_12m: Floats
    spend_last_90d: Floats
    repeat_spend_mean: Floats

    @cached_property
    def x(self) -> Floats:
        """Repeat purchase days (BG/NBD frequency)."""
        return (self.purchase_days - 1).astype(np.float64)

    @cached_property
    def t_x(self) -> Floats:
        """Weeks from first to last purchase (BG/NBD recency)."""
        return (self.last_day - self.first_day) / DAYS_PER_WEEK

    @cached_property
    def T(self) -> Floats:
        """Weeks from first purchase to the as-of day (customer age)."""
        return (self.as_of_day - self.first_day) / DAYS_PER_WEEK

    @cached_property
    def distinct(self) -> CollapsedHistories:
        """The distinct `(x, t_x, T)` rows, computed once: the BG/NBD fit and every prediction
        work on them."""
        return collapse(self.x, self.t_x, self.T)

    @cached_property
    def recency_days(self) -> Floats:
        """Days since the last purchase."""
        return (self.as_of_day - self.last_day).astype(np.float64)

    @cached_property
    def average_order_value(self) -> Floats:
        """Spend per order."""
        return self.total_spend / np.maximum(self.order_count, 1)

    @cached_property
    def spend_trend(self) -> Floats:
        """Spend of the last 90 days against the customer's own average 90 days (1 = steady).

        NaN for customers younger than 90 days: there is no trend to see yet.
        """
        age_days = (self.as_of_day - self.first_day).astype(np.float64)
        periods = age_days / 90.0
        average = np.divide(
            self.total_spend, periods, out=np.zeros_like(periods), where=periods > 0
        )
        trend = np.divide(
            self.spend_last_90d, average, out=np.full_like(average, np.nan), where=average > 0
        )
        trend[age_days < 90] = np.nan
        return trend

    def __len__(self) -> int:
        return len(self.customer)


def histories_as_of(ledger: PurchaseLedger, as_of_day: int) -> CustomerHistories:
    """Aggregate the ledger into one history per customer, using purchases up to `as_of_day`."""
    known = ledger.day <= as_of_day
    customer, day, amount = ledger.customer[known], ledger.day[known], ledger.amount[known]
    if not len(customer):
        order_count = np.zeros(0, np.int64)
    elif ledger.orders is None:
        order_count = np.bincount(customer)
    else:
        order_count = np.bincount(customer, weights=ledger.orders[known]).astype(np.int64)

    # One row per (customer, day): same-day orders merge into one purchase day. A ledger
    # already in (customer, day) order (see sorted_ledger) skips the sort: a fit computes
    # histories at several days from one ledger.
    if not _in_customer_day_order(customer, day):
        order = _customer_day_order(customer, day)
        customer, day, amount = customer[order], day[order], amount[order]
    new_day = np.ones(len(customer), dtype=bool)
    new_day[1:] = (customer[1:] != customer[:-1]) | (day[1:] != day[:-1])
    day_index = np.cumsum(new_day) - 1
    day_customer = customer[new_day]
    day_value = day[new_day]
    day_amount = np.bincount(day_index, weights=amount) if len(amount) else np.zeros(0)

    first_of_customer = np.ones(len(day_customer), dtype=bool)
    first_of_customer[1:] = day_customer[1:] != day_customer[:-1]
    present = day_customer[first_of_customer]  # sorted: np.unique without its sort
    slot = np.cumsum(first_of_customer) - 1
    n = len(present)
    purchase_days = np.bincount(slot, minlength=n).astype(np.int64)
    first_day = day_value[first_of_customer]
    last_of_customer = np.ones(len(day_customer), dtype=bool)
    last_of_customer[:-1] = day_customer[1:] != day_customer[:-1]
    last_day = day_value[last_of_customer]
    total = np.bincount(slot, weights=day_amount, minlength=n)
    first_amount = day_amount[first_of_customer]
    repeats = purchase_days - 1
    repeat_mean = np.divide(total - first_amount, repeats, out=np.zeros(n), where=repeats > 0)
    recent_12m = day_value > as_of_day - 365
    recent_90d = day_value > as_of_day - 90
    spend_12m = np.bincount(slot, weights=np.where(recent_12m, day_amount, 0.0), minlength=n)
    spend_90d = np.bincount(slot, weights=np.where(recent_90d, day_amount, 0.0), minlength=n)
    return CustomerHistories(
        as_of_day=as_of_day,
        customer=present.astype(np.int64),
        first_day=first_day.astype(np.int64),
        last_day=last_day.astype(np.int64),
        purchase_days=purchase_days,
        order_count=order_count[present].astype(np.int64),
        total_spend=total.astype(np.float64),
        spend_12m=spend_12m.astype(np.float64),
        spend_last_90d=spend_90d.astype(np.float64),
        repeat_spend_mean=repeat_mean,
    )


def sorted_ledger(ledger: PurchaseLedger) -> PurchaseLedger:
    """The same orders in (customer, day) order, which :func:`histories_as_of` need not sort."""
    if _in_customer_day_order(ledger.customer, ledger.day):
        return ledger
    return ledger.rows(_customer_day_order(ledger.customer, ledger.day))


def _customer_day_order(customer: Ints, day: Ints) -> Ints:
    """The stable permutation to (customer, day) order, as `np.lexsort((day, customer))`.

    One int64 key per order sorted by timsort, which runs through a ledger already grouped by
    customer (as PostgreSQL numbers it) nearly in one pass; lexsort sorts it from scratch.
    """
    low, high = int(day.min()), int(day.max())
    span = high - low + 1
    if int(customer.min()) < 0 or (int(customer.max()) + 1) * span >= 2**62:
        return np.asarray(np.lexsort((day, customer)), dtype=np.int64)
    key = customer.astype(np.int64) * span + (day.astype(np.int64) - low)
    return np.asarray(np.argsort(key, kind="stable"), dtype=np.int64)


def _in_customer_day_order(customer: Ints, day: Ints) -> bool:
    if len(customer) < 2:
        return True
    step = np.diff(customer)
    return bool(np.all((step > 0) | ((step == 0) & (np.diff(day) >= 0))))
