"""Reading the purchase ledger into arrays for the vectorised scoring code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring_service.db.models import Activity, Purchase
from scoring_service.domain.purchase_history import PurchaseLedger

_CHUNK = 500
_WHOLE_BASE = 20_000


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
    net = Purchase.amount - Purchase.refunded
    query = select(Purchase.customer_id, Purchase.purchase_day, net).where(
        Purchase.placed_at.is_not(None),
        Purchase.cancelled.is_(False),
        (Purchase.refunded == 0) | (net > 0),
    )
    if customer_ids is not None:
        query = query.where(Purchase.customer_id.in_(list(customer_ids)))
    rows = (await session.execute(query)).all()
    if not rows:
        empty = PurchaseLedger(
            np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
        )
        return LoadedLedger([], empty)
    ids = np.array([row[0] for row in rows], dtype=object)
    unique_ids, index = np.unique(ids, return_inverse=True)
    ledger = PurchaseLedger(
        customer=index.astype(np.int64),
        day=np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows)),
        amount=np.fromiter((float(row[2]) for row in rows), dtype=np.float64, count=len(rows)),
    )
    return LoadedLedger([str(i) for i in unique_ids], ledger)


async def engagement_counts(
    session: AsyncSession, customer_ids: Sequence[str], as_of: datetime, *, days: int = 30
) -> np.ndarray:
    """Activity events per customer in the `days` before `as_of`, aligned with `customer_ids`."""
    window = (Activity.occurred_at > as_of - timedelta(days=days), Activity.occurred_at <= as_of)
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
