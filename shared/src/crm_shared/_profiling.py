"""Replica of profiling objections (GDPR art. 21/22) for the services that profile customers.

profile-service owns consent and publishes every profiling decision on ``crm.customers``
(``consent.changed``, and in the consents of ``customer.created``/``customer.updated``).
Scoring and lifecycle keep the newest decision per customer in a ``profiling_decisions``
table of their own and leave objecting customers out of every automated evaluation. The
newest decision wins by its ``changed_at``, so a late or replayed older one never undoes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Boolean, Column, MetaData, String, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import CloudEvent, CustomerErased, CustomerMerged, profiling_decision
from crm_contracts._customer_limits import MAX_CUSTOMER_ID_LENGTH
from crm_shared._bulk import among
from crm_shared._db import UtcDateTime, upsert_into

_CHUNK = 500


@dataclass(frozen=True)
class ProfilingChange:
    """A customer whose profiling decision a batch changed: objecting now or not, and when."""

    customer_id: str
    objected: bool
    changed_at: datetime


def profiling_decisions_table(metadata: MetaData) -> Table:
    """Declare the replica on a service's metadata (its migrations create it)."""
    return Table(
        "profiling_decisions",
        metadata,
        Column("customer_id", String(MAX_CUSTOMER_ID_LENGTH), primary_key=True),
        Column("objected", Boolean, nullable=False),
        Column("changed_at", UtcDateTime, nullable=False),
    )


async def record_profiling_decisions(
    session: AsyncSession, table: Table, events: Sequence[CloudEvent]
) -> list[ProfilingChange]:
    """Keep the newest profiling decision a batch carries per customer; return those that
    changed the customer's objection (in no particular order).

    Erasure forgets the decision; a merge forgets the merged id's (profile-service publishes
    the survivor's own decision in its ``customer.updated``).
    """
    newest: dict[str, ProfilingChange] = {}
    for event in events:
        data = event.data
        if isinstance(data, CustomerErased | CustomerMerged):
            gone = data.customer_id if isinstance(data, CustomerErased) else data.merged_customer_id
            newest.pop(gone, None)
            await session.execute(delete(table).where(table.c.customer_id == gone))
            continue
        decision = profiling_decision(data)
        if decision is None:
            continue
        kept = newest.get(event.subject)
        if kept is None or decision.changed_at >= kept.changed_at:
            newest[event.subject] = ProfilingChange(
                event.subject, not decision.granted, decision.changed_at
            )
    if not newest:
        return []
    held = await _held(session, table, newest)
    changes = [
        change
        for cid, change in newest.items()
        if cid not in held or held[cid][1] < change.changed_at
    ]
    if not changes:
        return []
    statement = upsert_into(session, table)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.customer_id],
            set_={
                "objected": statement.excluded.objected,
                "changed_at": statement.excluded.changed_at,
            },
            where=table.c.changed_at < statement.excluded.changed_at,
        ),
        [
            {"customer_id": c.customer_id, "objected": c.objected, "changed_at": c.changed_at}
            for c in sorted(changes, key=lambda c: c.customer_id)
        ],
    )
    return [c for c in changes if c.objected != held.get(c.customer_id, (False, c.changed_at))[0]]


async def objecting_customers(
    session: AsyncSession, table: Table, customer_ids: Iterable[str] | None = None
) -> set[str]:
    """The customers (of ``customer_ids``, or all) who object to profiling now."""
    query = select(table.c.customer_id).where(table.c.objected.is_(True))
    if customer_ids is None:
        return set(await session.scalars(query))
    wanted = sorted(set(customer_ids))
    if wanted and session.get_bind().dialect.name == "postgresql":
        # One array, one statement text: no chunks and no new prepared statement per length.
        return set(await session.scalars(query.where(among(session, table.c.customer_id, wanted))))
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(await session.scalars(query.where(table.c.customer_id.in_(chunk))))
    return found


async def _held(
    session: AsyncSession, table: Table, customers: Iterable[str]
) -> dict[str, tuple[bool, datetime]]:
    wanted = sorted(customers)
    held: dict[str, tuple[bool, datetime]] = {}
    for start in range(0, len(wanted), _CHUNK):
        query = select(table.c.customer_id, table.c.objected, table.c.changed_at).where(
            table.c.customer_id.in_(wanted[start : start + _CHUNK])
        )
        for customer_id, objected, changed_at in (await session.execute(query)).all():
            held[customer_id] = (objected, changed_at)
    return held
