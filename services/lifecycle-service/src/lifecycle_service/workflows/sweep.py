"""The aging sweep: time passes for every customer due a review, a chunk per transaction.

Only customers whose stored ``next_review_at`` has come are read (through its index), so a
daily sweep over a million customers reads the few thousand time can move. One replica
sweeps at a time (a lock held for the whole sweep); rows a consumer is changing are skipped
and reviewed by the next sweep, so the sweep never waits on, or races, the event stream.

A chunk is reviewed on arrays (``domain.review_arrays``, proven equal to the per-customer
domain functions): most due customers only get a new review time, written in one statement
per chunk. The few who move or whose warning changes are then loaded and changed through the
domain functions (``sweep_locked``), which word the reasons, record transitions, warnings and
counts, and stage the events. ``review="per_customer"`` keeps the previous path (every
customer through the domain functions), the reference the benchmark compares against.

After a rules change every buyer is reviewed once under the new rules before the due ones:
``workflows.rules_review`` walks them without locks (on PostgreSQL in the table's physical
order, ``rules_walk``) and writes only what changes (``replace_rules`` no longer puts everyone
up for review).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import ServiceRuntime, job_lock
from lifecycle_service.db.models import SweepRun
from lifecycle_service.domain.review_arrays import review_chunk, to_microseconds
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.settings import LifecycleSettings
from lifecycle_service.workflows.customer_rows import (
    CUSTOMERS,
    customers_with_warnings,
    load_customers,
)
from lifecycle_service.workflows.rules_review import Review, review_every_buyer
from lifecycle_service.workflows.rules_store import current_rules
from lifecycle_service.workflows.sweep_columns import load_due_columns, write_review_times
from lifecycle_service.workflows.sweep_locked import ChunkDone, review_stored

SWEEP_JOB = "lifecycle-sweep"


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    as_of: datetime
    reviewed: int
    moved: int
    warnings_raised: int
    warnings_closed: int
    seconds: float


class SweepAlreadyRunning(Exception):
    """Another replica (or request) is sweeping right now."""


async def sweep(
    runtime: ServiceRuntime,
    as_of: datetime,
    *,
    chunk_size: int,
    trigger: str,
    clock: Callable[[], datetime],
    review: Review = "arrays",
) -> SweepReport:
    """Move every customer due at ``as_of`` on; raises :class:`SweepAlreadyRunning` if locked.

    Rules newer than the last completed review of every buyer are applied to every buyer
    first (``workflows.rules_review``, resumed where a stopped sweep left it).
    """
    review_chunk_of = _sweep_chunk if review == "arrays" else _sweep_chunk_per_customer
    started_at, started = clock(), time.perf_counter()
    async with job_lock(runtime.engine, SWEEP_JOB) as held:
        if not held:
            raise SweepAlreadyRunning
        async with runtime.sessions() as session:
            in_force = await current_rules(session)
        rules = in_force.rules
        total = await review_every_buyer(
            runtime, in_force, as_of, chunk_size=chunk_size, clock=clock, review=review
        )
        while True:
            async with runtime.sessions() as session, session.begin():
                done = await review_chunk_of(session, rules, as_of, chunk_size)
            if done is None:
                break
            if done.changed_anything:
                runtime.wake_relay()
            total += done
        report = SweepReport(
            as_of,
            total.reviewed,
            total.moved,
            total.raised,
            total.closed,
            time.perf_counter() - started,
        )
        async with runtime.sessions() as session, session.begin():
            session.add(
                SweepRun(
                    as_of=as_of,
                    started_at=started_at,
                    finished_at=clock(),
                    reviewed=total.reviewed,
                    moved=total.moved,
                    warnings_raised=total.raised,
                    warnings_closed=total.closed,
                    trigger=trigger,
                )
            )
    return report


async def _sweep_chunk(
    session: AsyncSession, rules: StageRules, as_of: datetime, chunk_size: int
) -> ChunkDone | None:
    """Review up to ``chunk_size`` due customers on arrays; None when none is due."""
    chunk = await load_due_columns(session, as_of, chunk_size)
    if chunk is None:
        return None
    review = review_chunk(chunk.columns, rules, to_microseconds(as_of))
    changed = review.changed
    # Everyone else only gets a new review time (where it differs from the stored one).
    rewrite = ~changed & (review.next_review_at != chunk.next_review_at)
    ids = chunk.customer_ids
    await write_review_times(
        session, [ids[i] for i in rewrite.nonzero()[0]], review.next_review_at[rewrite]
    )
    if not changed.any():
        return ChunkDone(len(ids), 0, 0, 0)
    stored = await load_customers(session, [ids[i] for i in changed.nonzero()[0]])
    done = await review_stored(session, rules, as_of, stored)
    return ChunkDone(len(ids), done.moved, done.raised, done.closed)


async def _sweep_chunk_per_customer(
    session: AsyncSession, rules: StageRules, as_of: datetime, chunk_size: int
) -> ChunkDone | None:
    """Review up to ``chunk_size`` due customers one domain call each; None when none is due."""
    query = (
        select(CUSTOMERS)
        .where(CUSTOMERS.c.next_review_at <= as_of)
        .order_by(CUSTOMERS.c.next_review_at)
        .limit(chunk_size)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = (await session.execute(query)).all()
    if not rows:
        return None
    return await review_stored(session, rules, as_of, await customers_with_warnings(session, rows))


async def scheduled_sweep(
    runtime: ServiceRuntime, settings: LifecycleSettings, clock: Callable[[], datetime]
) -> SweepReport | None:
    """The periodic sweep at the current time; None when another replica is sweeping."""
    try:
        return await sweep(
            runtime, clock(), chunk_size=settings.sweep_chunk_size, trigger="schedule", clock=clock
        )
    except SweepAlreadyRunning:
        return None
