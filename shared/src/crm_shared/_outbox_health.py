"""How the outbox stands: what waits to be published, since when, and what was set aside.

Read straight from the table, not from the relay's memory, so a wedged relay, or one whose
leadership another replica holds, cannot make the numbers look better than they are. Every
query walks a partial index (``ix_outbox_unsent``, ``ix_outbox_parked``) of just the rows it
counts, so readiness stays cheap however many sent rows the table retains.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_shared._clock import utc_now
from crm_shared._db import READ_ONLY
from crm_shared._health import ReadinessResult
from crm_shared._metrics import ServiceMetrics
from crm_shared._outbox_sequences import AUTOCOMMIT


@dataclass(frozen=True)
class OutboxBacklog:
    """The oldest row waiting to be published, and how many rows the relay set aside."""

    oldest_unsent_at: datetime | None
    parked: int

    def oldest_unsent_age(self, now: datetime) -> timedelta:
        """How long the oldest waiting row has waited (zero when none waits)."""
        if self.oldest_unsent_at is None:
            return timedelta(0)
        return max(now - self.oldest_unsent_at, timedelta(0))

    def is_stuck(self, now: datetime, stuck_after: timedelta) -> bool:
        """Whether a row has waited longer than `stuck_after`: the relay is not getting through.

        Parked rows do not count: the relay has moved past them, and what they need is an
        operator (a larger broker limit, or dropping them), which a restart would not give.
        """
        return self.oldest_unsent_age(now) > stuck_after


async def read_backlog(sessions: async_sessionmaker[AsyncSession], outbox: Table) -> OutboxBacklog:
    """The oldest waiting row (the lowest id: the next to publish) and the parked count."""
    oldest = (
        select(outbox.c.created_at)
        .where(outbox.c.sent_at.is_(None), outbox.c.parked_at.is_(None))
        .order_by(outbox.c.id)
        .limit(1)
    )
    parked = select(func.count()).select_from(outbox).where(outbox.c.parked_at.is_not(None))
    async with sessions() as session:
        await session.connection(execution_options={READ_ONLY: True})
        oldest_at = await session.scalar(oldest)
        parked_rows = int(await session.scalar(parked) or 0)
    return OutboxBacklog(oldest_at, parked_rows)


async def count_unsent(sessions: async_sessionmaker[AsyncSession], outbox: Table) -> int:
    """How many rows wait to be published (parked rows excluded)."""
    query = (
        select(func.count())
        .select_from(outbox)
        .where(outbox.c.sent_at.is_(None), outbox.c.parked_at.is_(None))
    )
    async with sessions() as session:
        await session.connection(execution_options={READ_ONLY: True})
        return int(await session.scalar(query) or 0)


async def read_gauges(
    sessions: async_sessionmaker[AsyncSession], outbox: Table
) -> tuple[OutboxBacklog, int]:
    """The backlog and the unsent count in one statement (the relay refreshes its gauges
    every round or two: one round trip, and on PostgreSQL no BEGIN and COMMIT around it)."""
    unsent = (outbox.c.sent_at.is_(None), outbox.c.parked_at.is_(None))
    oldest = select(outbox.c.created_at).where(*unsent).order_by(outbox.c.id).limit(1)
    parked = select(func.count()).select_from(outbox).where(outbox.c.parked_at.is_not(None))
    pending = select(func.count()).select_from(outbox).where(*unsent)
    query = select(oldest.scalar_subquery(), parked.scalar_subquery(), pending.scalar_subquery())
    async with sessions() as session:
        options: dict[str, object] = {READ_ONLY: True}
        if session.get_bind().dialect.name == "postgresql":
            options |= AUTOCOMMIT
        connection = await session.connection(execution_options=options)
        oldest_at, parked_rows, pending_rows = (await connection.execute(query)).one()
    return OutboxBacklog(oldest_at, int(parked_rows or 0)), int(pending_rows or 0)


def record_backlog(
    metrics: ServiceMetrics, backlog: OutboxBacklog, pending: int, now: datetime
) -> None:
    """Set the outbox gauges from what the table holds."""
    metrics.outbox_pending.set(pending)
    metrics.outbox_oldest_unsent_age.set(backlog.oldest_unsent_age(now).total_seconds())
    metrics.outbox_parked_rows.set(backlog.parked)


async def outbox_readiness(
    sessions: async_sessionmaker[AsyncSession], outbox: Table, *, stuck_after: timedelta
) -> ReadinessResult:
    """Not ready while the oldest waiting row is older than `stuck_after`; parked rows shown."""
    try:
        backlog = await read_backlog(sessions, outbox)
    except Exception:
        return ReadinessResult(False, {"error": "the outbox could not be read"})
    now = utc_now()
    return ReadinessResult(
        not backlog.is_stuck(now, stuck_after),
        {
            "oldest_unsent_age_seconds": round(backlog.oldest_unsent_age(now).total_seconds(), 3),
            "stuck_after_seconds": stuck_after.total_seconds(),
            "parked": backlog.parked,
        },
    )
