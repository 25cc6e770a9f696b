"""Reading the purchase ledger into arrays for the vectorised scoring code."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import FeedbackKind
from scoring_service.db.models import PROFILING_DECISIONS, Activity, Purchase
from scoring_service.domain.purchase_history import Floats, Ints, PurchaseLedger, sorted_ledger

_CHUNK = 500
# Activity types that report feedback rather than engagement (see crm_shared's FeedbackKind).
_NOT_ENGAGEMENT = sorted(kind.value for kind in FeedbackKind)
_WHOLE_BASE = 20_000
_OBJECTING = PROFILING_DECISIONS.c
# Orders that count: placed, not cancelled, not refunded in full (a free order still counts),
# of customers who do not object to profiling. An objecting customer's orders are kept in the
# ledger (they count again the moment the objection is withdrawn) but feed neither their own
# scores nor the population fit: the fit exists to profile people, so using their orders in it
# would be processing for the purpose they objected to (GDPR art. 21).
_KEPT = (
    Purchase.placed_at.is_not(None),
    Purchase.cancelled.is_(False),
    (Purchase.refunded == 0) | (Purchase.amount - Purchase.refunded > 0),
    ~exists().where(_OBJECTING.customer_id == Purchase.customer_id, _OBJECTING.objected),
)
# The same filter for the whole ledger on PostgreSQL (see _whole_ledger_postgres). Customers
# are numbered in PostgreSQL, in byte order of their ids (collation "C": UTF-8 byte order is
# code point order, Python's sort order), by one sort and one window pass over the orders
# (a join of the orders to a numbered customer list sorted and hashed twice as much, and
# spilled each to disk); only one id per customer crosses the wire, with its number, so the
# ids' order does not rest on the aggregate's input order. The per-order columns come as
# binary arrays (`array_send`) that numpy reads in place: a Python int or float per order
# cost half a second at a million customers.
_WHOLE_LEDGER = """
with kept as (
    select customer_id, purchase_day, (amount - refunded)::float8 as net from purchases
    where placed_at is not null and not cancelled and (refunded = 0 or amount - refunded > 0)
    and not exists (select 1 from profiling_decisions d
                    where d.customer_id = purchases.customer_id and d.objected)
), numbered as (
    select customer_id, purchase_day, net, (dense_rank() over w - 1)::int4 as n,
           rank() over w = row_number() over w as first_of_customer
    from kept window w as (order by customer_id collate "C")
)
select array_agg(customer_id) filter (where first_of_customer),
       array_send(array_agg(n) filter (where first_of_customer)),
       array_send(array_agg(n)), array_send(array_agg(purchase_day)), array_send(array_agg(net))
from numbered
"""
_ARRAY_HEADER = 20  # ndim, has-nulls flag, element type, then length and lower bound (1-D)


@dataclass(frozen=True)
class LoadedLedger:
    """The ledger as arrays, and the customer id behind each customer index."""

    customer_ids: list[str]
    ledger: PurchaseLedger


async def load_ledger(
    session: AsyncSession, customer_ids: Sequence[str] | None = None
) -> LoadedLedger:
    """Net amounts of orders not cancelled nor fully refunded, for some or all customers.

    A free order (amount 0) is still a purchase; an order refunded in full is not.
    """
    if customer_ids is None and session.get_bind().dialect.name == "postgresql":
        return await _whole_ledger_postgres(session)
    net = Purchase.amount - Purchase.refunded
    query = select(Purchase.customer_id, Purchase.purchase_day, net).where(*_KEPT)
    if customer_ids is not None:
        query = query.where(Purchase.customer_id.in_(list(customer_ids)))
    rows = (await session.execute(query)).all()
    return _as_ledger(
        [row[0] for row in rows],
        np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows)),
        np.fromiter((float(row[2]) for row in rows), dtype=np.float64, count=len(rows)),
    )


async def _whole_ledger_postgres(session: AsyncSession) -> LoadedLedger:
    # The whole ledger (millions of rows at a million customers) as arrays in one row,
    # straight from asyncpg, which decodes arrays in C: a row object per order cost seconds,
    # and numbering the customers in Python (a dict of ids, then a sort) seconds more.
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    row = await raw.driver_connection.fetchrow(_WHOLE_LEDGER)  # type: ignore[union-attr]
    ids, id_numbers, customers, days, amounts = row
    if ids is None:
        return _as_ledger([], np.zeros(0, np.int64), np.zeros(0, np.float64))
    numbers = _binary_array(id_numbers, ">i4")
    if not np.array_equal(numbers, np.arange(len(ids))):
        ids = [ids[i] for i in np.argsort(numbers).tolist()]
    ledger = PurchaseLedger(
        customer=_binary_array(customers, ">i4"),
        day=_binary_array(days, ">i4"),
        amount=_binary_array(amounts, ">f8"),
    )
    # In (customer, day) order once: every history of the fit (its own, the calibration's
    # time splits, the scores') then skips the sort.
    return LoadedLedger(ids, sorted_ledger(ledger))


def _binary_array(data: bytes, element: str) -> NDArray[Any]:
    """A one-dimensional PostgreSQL array in its binary form (`array_send`) without NULLs,
    as a native numpy array (int64 for integers, float64 for floats)."""
    dimensions, _nulls, _type, length = struct.unpack_from(">iiii", data)
    if dimensions != 1:
        raise ValueError(f"expected a one-dimensional array, got {dimensions} dimensions")
    size = np.dtype(element).itemsize
    items = np.frombuffer(
        data, np.dtype([("size", ">i4"), ("value", element)]), count=length, offset=_ARRAY_HEADER
    )
    if not bool(np.all(items["size"] == size)):
        raise ValueError("the ledger holds a NULL where every order has a value")
    native = np.int64 if np.dtype(element).kind == "i" else np.float64
    return items["value"].astype(native)


def _as_ledger(ids: list[str], days: Ints, amounts: Floats) -> LoadedLedger:
    """Customer indices in sorted id order, as np.unique gives, without sorting every row."""
    if not ids:
        empty = PurchaseLedger(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        return LoadedLedger([], empty)
    first_seen: dict[str, int] = {}
    seen = np.fromiter(
        (first_seen.setdefault(i, len(first_seen)) for i in ids), dtype=np.int64, count=len(ids)
    )
    unique = list(first_seen)
    order = sorted(range(len(unique)), key=unique.__getitem__)
    rank = np.empty(len(unique), dtype=np.int64)
    rank[order] = np.arange(len(unique))
    ledger = PurchaseLedger(customer=rank[seen], day=days, amount=amounts)
    return LoadedLedger([unique[i] for i in order], ledger)


async def engagement_counts(
    session: AsyncSession, customer_ids: Sequence[str], as_of: datetime, *, days: int = 30
) -> np.ndarray:
    """Activity events per customer in the `days` before `as_of`, aligned with `customer_ids`.

    Feedback sent as a plain activity (a `complaint` activity type) is not engagement.
    """
    window = (
        Activity.occurred_at > as_of - timedelta(days=days),
        Activity.occurred_at <= as_of,
        Activity.activity_type.is_(None) | Activity.activity_type.not_in(_NOT_ENGAGEMENT),
    )
    query = select(Activity.customer_id, func.count()).group_by(Activity.customer_id)
    counts: dict[str, int] = {}
    wanted = sorted(set(customer_ids))
    if len(wanted) > _WHOLE_BASE:
        # Scoring (nearly) everyone: one pass over the window beats thousands of IN lists.
        counts.update(dict((await session.execute(query.where(*window))).all()))
    else:
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            rows = await session.execute(query.where(Activity.customer_id.in_(chunk), *window))
            counts.update(dict(rows.all()))
    return np.array([counts.get(cid, 0) for cid in customer_ids], dtype=np.float64)
