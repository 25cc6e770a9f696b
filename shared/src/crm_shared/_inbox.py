"""The inbox: which events of outside producers a consumer has applied, by event id.

Only records without a producer stamp come here (a shop's orders, intake documents): a record
read twice is known by its stored offset, and a copy one of our relays sent again by its
producer sequence (see crm_shared._sequences), neither needing a row per event.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ARRAY, Table, bindparam, func, insert, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession


async def record_new_events(
    session: AsyncSession, inbox: Table, consumer: str, event_ids: Sequence[str], now: datetime
) -> set[str]:
    """Record `event_ids` as processed by `consumer`; return those not recorded before.

    Called in the transaction that applies the events: if it rolls back, so do the records.
    On PostgreSQL this is one statement for the whole batch, whatever its size (the ids as one
    array, `INSERT ... SELECT unnest(...) ON CONFLICT DO NOTHING RETURNING`): the ids it
    returns are the new ones. A concurrent transaction recording the same id (another replica
    during a rebalance) makes this one wait for its outcome instead of both applying the event.
    Elsewhere (SQLite, one writer) the ids already there are read, then the others inserted.
    """
    unique = list(dict.fromkeys(event_ids))
    if not unique:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        ids = bindparam("event_ids", unique, type_=ARRAY(inbox.c.event_id.type))
        rows = select(
            literal(consumer, inbox.c.consumer.type),
            func.unnest(ids),
            literal(now, inbox.c.processed_at.type),
        )
        statement = (
            postgresql.insert(inbox)
            .from_select(["consumer", "event_id", "processed_at"], rows)
            .on_conflict_do_nothing()
            .returning(inbox.c.event_id)
        )
        return set((await session.scalars(statement)).all())
    seen = set(
        (
            await session.scalars(
                select(inbox.c.event_id).where(
                    inbox.c.consumer == consumer, inbox.c.event_id.in_(unique)
                )
            )
        ).all()
    )
    new = [event_id for event_id in unique if event_id not in seen]
    if new:
        await session.execute(
            insert(inbox),
            [{"consumer": consumer, "event_id": event_id, "processed_at": now} for event_id in new],
        )
    return set(new)
