"""Reading the purchase ledger into arrays for the vectorised scoring code."""

from __future__ import annotations

import itertools
import operator
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
from scoring_service.workflows.purchase_summaries import refresh_stale_summaries

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
# The whole ledger on PostgreSQL: the purchase summaries (workflows/purchase_summaries.py),
# one row a customer read in key order (collation "C": code point order, Python's sort
# order, so customer numbers are positions), without the customers who object to profiling.
# Their packed columns are concatenated in PostgreSQL and read by numpy in place; one id per
# customer crosses the wire. Main's query before them sorted every order of the base by
# customer (17 s at a million customers, bench/RESULTS.md).
_WHOLE_LEDGER = """
select array_agg(customer_id), array_send(array_agg(length(days) / 4)),
       string_agg(days, ''::bytea), string_agg(amounts, ''::bytea), string_agg(orders, ''::bytea)
from (
    select s.customer_id, s.days, s.amounts, s.orders from purchase_summaries s
    where not exists (select 1 from profiling_decisions d
                      where d.customer_id = s.customer_id and d.objected)
    order by s.customer_id
) as counted
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
    # As arrays in one row, straight from asyncpg, which decodes them in C: a row object per
    # customer or order cost seconds at a million customers.
    await refresh_stale_summaries(session)
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    row = await raw.driver_connection.fetchrow(_WHOLE_LEDGER)  # type: ignore[union-attr]
    ids, day_counts, days, amounts, orders = row
    if ids is None:
        return _as_ledger([], np.zeros(0, np.int64), np.zeros(0, np.float64))
    customer = np.repeat(np.arange(len(ids), dtype=np.int64), _binary_array(day_counts, ">i4"))
    ledger = PurchaseLedger(
        customer=customer,
        day=np.frombuffer(days, ">i4").astype(np.int64),
        amount=np.frombuffer(amounts, ">f8").astype(np.float64),
        orders=np.frombuffer(orders, ">i4").astype(np.int64),
    )
    if not all(map(operator.lt, ids, itertools.islice(ids, 1, None))):
        # The subquery's order reaches the aggregates in every plan seen; should it ever not,
        # number the customers in id order here (ids and rows were aggregated alike).
        order = sorted(range(len(ids)), key=ids.__getitem__)
        rank = np.empty(len(ids), dtype=np.int64)
        rank[order] = np.arange(len(ids))
        ledger = PurchaseLedger(rank[ledger.customer], ledger.day, ledger.amount, ledger.orders)
        ids = [ids[i] for i in order]
    # Already in (customer, day) order: every history of the fit (its own, the calibration's
    # time splits, the scores') skips the sort.
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
