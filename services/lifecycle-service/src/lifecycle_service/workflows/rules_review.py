"""The review of every buyer under new rules: a walk by customer id, unlocked, resumable.

``replace_rules`` stores a version and nothing else. A sweep that finds the rules in force
without a completed review walks every buyer in customer-id order, a chunk per step:

- the chunk is read in one statement without locks (the event stream is not held up) and
  reviewed on arrays (``domain.review_arrays``);
- customers whose review time alone changes get it in one statement that writes only rows no
  transaction updated or locked since the read (PostgreSQL's xmin and xmax, see
  ``sweep_postgres``); on this workload about 80% of buyers need no write at all;
- the few who move or whose warning changes, and those a consumer touched meanwhile, are
  loaded locked and reviewed as they stand then (``sweep_locked``);
- the last customer reviewed is committed with the chunk's last step (``rules_reviews``), so
  a sweep that stops resumes there: no customer is skipped, and when the review completes
  every buyer has been reviewed under the new rules, by it or by a consumer that changed
  them later (consumers apply the rules in force).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import ServiceRuntime
from lifecycle_service.db.models import RulesReview
from lifecycle_service.domain.review_arrays import review_chunk, to_microseconds
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.workflows.customer_rows import CUSTOMERS
from lifecycle_service.workflows.rules_store import RulesVersion
from lifecycle_service.workflows.sweep_columns import (
    load_buyer_columns,
    write_review_times_checked,
)
from lifecycle_service.workflows.sweep_locked import NOTHING, ChunkDone, review_locked

Review = Literal["arrays", "per_customer"]
_START = ""  # below every customer id


async def review_every_buyer(
    runtime: ServiceRuntime,
    in_force: RulesVersion,
    as_of: datetime,
    *,
    chunk_size: int,
    clock: Callable[[], datetime],
    review: Review = "arrays",
) -> ChunkDone:
    """Review every buyer under ``in_force`` unless done already (call under the sweep lock)."""
    if in_force.version == 0:
        return NOTHING  # the built-in defaults: review times were always computed under them
    async with runtime.sessions() as session, session.begin():
        after = await _resume_point(session, in_force.version, clock())
    if after is None:
        return NOTHING
    step = _arrays_step if review == "arrays" else _per_customer_step
    total = NOTHING
    while True:
        done, after = await step(runtime, in_force, as_of, after, chunk_size)
        if after is None:
            async with runtime.sessions() as session, session.begin():
                await _complete(session, in_force.version, clock())
            return total
        if done.changed_anything:
            runtime.wake_relay()
        total += done


async def _resume_point(session: AsyncSession, version: int, started_at: datetime) -> str | None:
    """Where the review of ``version`` goes on (started now if new); None when completed."""
    progress = await session.get(RulesReview, version)
    if progress is None:
        session.add(RulesReview(rules_version=version, started_at=started_at, reviewed=0))
        return _START
    if progress.completed_at is not None:
        return None
    return progress.last_customer_id or _START


async def _advance(
    session: AsyncSession, version: int, last_customer_id: str, reviewed: int
) -> None:
    await session.execute(
        update(RulesReview)
        .where(RulesReview.rules_version == version)
        .values(last_customer_id=last_customer_id, reviewed=RulesReview.reviewed + reviewed)
    )


async def _complete(session: AsyncSession, version: int, at: datetime) -> None:
    await session.execute(
        update(RulesReview).where(RulesReview.rules_version == version).values(completed_at=at)
    )


async def _arrays_step(
    runtime: ServiceRuntime, in_force: RulesVersion, as_of: datetime, after: str, size: int
) -> tuple[ChunkDone, str | None]:
    """One chunk on arrays: (what it did, the last customer id), None once past the last."""
    rules: StageRules = in_force.rules
    async with runtime.sessions() as session, session.begin():
        chunk = await load_buyer_columns(session, after, size)
        if chunk is None:
            return NOTHING, None
        ids, versions = chunk.customer_ids, chunk.row_versions
        checked = review_chunk(chunk.columns, rules, to_microseconds(as_of))
        # A row locked when read (xmax set, the locker perhaps still running, perhaps having
        # changed only the warnings) is reviewed locked with the movers.
        locked = np.array([xmax != "0" for _, xmax in versions or ()], dtype=bool)
        changed = checked.changed | locked if versions else checked.changed
        rewrite = (~changed & (checked.next_review_at != chunk.next_review_at)).nonzero()[0]
        left = await write_review_times_checked(
            session,
            [ids[i] for i in rewrite],
            checked.next_review_at[rewrite],
            None if versions is None else [versions[i] for i in rewrite],
        )
        again = sorted({ids[i] for i in changed.nonzero()[0]} | set(left))
        if not again:
            await _advance(session, in_force.version, ids[-1], len(ids))
            return ChunkDone(len(ids), 0, 0, 0), ids[-1]
    # A transaction of its own: the rows it waits for are locked in id order, holding none.
    async with runtime.sessions() as session, session.begin():
        done = await review_locked(session, rules, as_of, again)
        await _advance(session, in_force.version, ids[-1], len(ids))
    return ChunkDone(len(ids), done.moved, done.raised, done.closed), ids[-1]


async def _per_customer_step(
    runtime: ServiceRuntime, in_force: RulesVersion, as_of: datetime, after: str, size: int
) -> tuple[ChunkDone, str | None]:
    """One chunk, every customer through the domain functions, locked (the reference)."""
    c = CUSTOMERS.c
    async with runtime.sessions() as session, session.begin():
        ids = list(
            await session.scalars(
                select(c.customer_id)
                .where(c.customer_id > after, c.last_purchase_at.is_not(None))
                .order_by(c.customer_id)
                .limit(size)
            )
        )
        if not ids:
            return NOTHING, None
        done = await review_locked(session, in_force.rules, as_of, ids)
        await _advance(session, in_force.version, ids[-1], len(ids))
    return ChunkDone(len(ids), done.moved, done.raised, done.closed), ids[-1]
