"""Customers waiting to be re-scored: queued by the consumer, scored in bulk by a loop.

Consuming an order only updates the ledger and queues its customer, so the consumer keeps
pace with the order stream; the re-score loop then scores queued customers thousands at a
time, and a customer touched by many orders in a burst is scored once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import upsert_into
from scoring_service.db.models import PendingRescore


async def queue_rescores(session: AsyncSession, latest_event: Mapping[str, datetime]) -> None:
    """Queue customers for re-scoring as of their latest event (a later time wins)."""
    if not latest_event:
        return
    statement = upsert_into(session, PendingRescore)
    newest = statement.on_conflict_do_update(
        index_elements=[PendingRescore.customer_id],
        set_={"as_of": statement.excluded.as_of},
        where=PendingRescore.as_of < statement.excluded.as_of,
    )
    await session.execute(
        newest, [{"customer_id": cid, "as_of": moment} for cid, moment in latest_event.items()]
    )


async def claim_rescores(session: AsyncSession, limit: int) -> dict[str, datetime]:
    """Up to `limit` queued customers, locked for this transaction (skipped by other replicas)."""
    query = select(PendingRescore.customer_id, PendingRescore.as_of).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return dict((await session.execute(query)).all())


async def release_rescores(session: AsyncSession, claimed: Mapping[str, datetime]) -> None:
    """Remove claimed customers from the queue (unless a newer event re-queued them since)."""
    if not claimed:
        return
    table = cast(Table, PendingRescore.__table__)
    await session.execute(
        delete(table).where(
            table.c.customer_id == bindparam("claimed_id"),
            table.c.as_of <= bindparam("claimed_as_of"),
        ),
        [{"claimed_id": cid, "claimed_as_of": moment} for cid, moment in claimed.items()],
    )


async def clear_rescores_until(session: AsyncSession, as_of: datetime) -> None:
    """A full re-score as of `as_of` covers every customer queued for a time up to then."""
    await session.execute(delete(PendingRescore).where(PendingRescore.as_of <= as_of))
