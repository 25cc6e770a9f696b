"""Customers waiting to be re-scored: queued by the consumer, scored in bulk by a loop.

Consuming an order only updates the ledger and queues its customer, so the consumer keeps
pace with the order stream; the re-score loop then scores queued customers thousands at a
time, and a customer touched by many orders in a burst is scored once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import BulkWrite, among
from scoring_service.db.models import PendingRescore


async def queue_rescores(session: AsyncSession, latest_event: Mapping[str, datetime]) -> None:
    """Queue customers for re-scoring as of their latest event (a later time wins)."""
    if not latest_event:
        return
    # In key order, as `release_rescores` deletes: two transactions then never wait on each
    # other's rows in opposite orders (a deadlock).
    await _QUEUE.run(session, [(cid, latest_event[cid]) for cid in sorted(latest_event)])


_QUEUE = BulkWrite(
    cast(Table, PendingRescore.__table__),
    ("customer_id", "as_of"),
    conflict=("customer_id",),
    update=("as_of",),
    where="pending_rescores.as_of < excluded.as_of",
)


# One drainer of the queue at a time across replicas (PostgreSQL advisory lock, held until the
# re-score transaction ends).
_DRAIN_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"scoring:pending-rescores").digest()[:8], "big", signed=True
)


async def claim_rescores(session: AsyncSession, limit: int) -> dict[str, datetime]:
    """Up to `limit` queued customers for this transaction to re-score; none while another
    replica's re-score transaction holds the queue.

    The queued rows themselves are not locked: a row lock held for the whole re-score made
    every consumer batch that re-queued one of those customers (`queue_rescores`' upsert) wait
    for the re-score to commit, which serialised the order consumer behind the re-score loop.
    Instead one transaction at a time drains the queue (an advisory lock), and
    `release_rescores` removes only rows not re-queued with a later time meanwhile.
    """
    if session.get_bind().dialect.name == "postgresql":
        locked = await session.scalar(select(func.pg_try_advisory_xact_lock(_DRAIN_LOCK_KEY)))
        if not locked:
            return {}
    # SQLite: the transaction began with BEGIN IMMEDIATE, so it is the only writer anyway.
    query = select(PendingRescore.customer_id, PendingRescore.as_of).limit(limit)
    return dict((await session.execute(query)).all())


async def release_rescores(session: AsyncSession, claimed: Mapping[str, datetime]) -> None:
    """Remove claimed customers from the queue (unless a newer event re-queued them since)."""
    if not claimed:
        return
    table = cast(Table, PendingRescore.__table__)
    if session.get_bind().dialect.name == "postgresql":
        ids = sorted(claimed)
        # Rows locked in key order first, as `queue_rescores` upserts them (no deadlock), then
        # one DELETE for them all instead of one execution per customer.
        await session.execute(
            select(table.c.customer_id)
            .where(among(session, table.c.customer_id, ids))
            .order_by(table.c.customer_id)
            .with_for_update()
        )
        connection = await session.connection()
        await connection.exec_driver_sql(_RELEASE_SQL, (ids, [claimed[cid] for cid in ids]))
        return
    await session.execute(
        delete(table).where(
            table.c.customer_id == bindparam("claimed_id"),
            table.c.as_of <= bindparam("claimed_as_of"),
        ),
        [{"claimed_id": cid, "claimed_as_of": claimed[cid]} for cid in sorted(claimed)],
    )


_RELEASE_SQL = (
    "DELETE FROM pending_rescores AS p USING unnest($1::varchar[], $2::timestamptz[])"
    " AS v(customer_id, as_of) WHERE p.customer_id = v.customer_id AND p.as_of <= v.as_of"
)


async def clear_rescores_until(session: AsyncSession, as_of: datetime) -> None:
    """A full re-score as of `as_of` covers every customer queued for a time up to then."""
    await session.execute(delete(PendingRescore).where(PendingRescore.as_of <= as_of))
