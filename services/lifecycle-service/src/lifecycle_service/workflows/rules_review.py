"""The review of every buyer under new rules: a walk of every buyer, unlocked, resumable.

``replace_rules`` stores a version and nothing else. A sweep that finds the rules in force
without a completed review walks every buyer, a chunk per step:

- on PostgreSQL the table in physical order (``rules_walk``): each chunk read without locks,
  reviewed on arrays, only changed review times written, checked against concurrent writers,
  the movers reviewed locked;
- on SQLite (one writer at a time) the same review by customer id, and on the
  ``per_customer`` path (the reference) every customer locked through the domain functions.

How far the walk came is committed with the chunk's last step (``rules_reviews``), so a sweep
that stops resumes there: no customer is skipped, and when the review completes every buyer
has been reviewed under the new rules, by it or by a consumer that changed them later
(consumers apply the rules in force; ``rules_walk`` says where that leaves a window).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from crm_shared import ServiceRuntime
from lifecycle_service.domain.review_arrays import review_chunk, to_microseconds
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.workflows.customer_rows import CUSTOMERS
from lifecycle_service.workflows.rules_review_progress import advance, complete, resume_point
from lifecycle_service.workflows.rules_store import RulesVersion
from lifecycle_service.workflows.rules_walk import parse_position, walk_every_buyer
from lifecycle_service.workflows.sweep_columns import load_buyer_columns_sqlite, write_review_times
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
        progress = await resume_point(session, in_force.version, clock())
        after = None if progress is None else progress.last_customer_id or _START
        position = None if progress is None else parse_position(progress.walk_position)
    if after is None or position is None:
        return NOTHING
    if review == "arrays" and runtime.engine.dialect.name == "postgresql":
        total = await walk_every_buyer(runtime, in_force, as_of, position, chunk_size=chunk_size)
    else:
        total = await _walk_by_id(runtime, in_force, as_of, after, chunk_size, review)
    async with runtime.sessions() as session, session.begin():
        await complete(session, in_force.version, clock())
    return total


async def _walk_by_id(
    runtime: ServiceRuntime,
    in_force: RulesVersion,
    as_of: datetime,
    after: str,
    chunk_size: int,
    review: Review,
) -> ChunkDone:
    step = _arrays_step if review == "arrays" else _per_customer_step
    total = NOTHING
    while True:
        done, last = await step(runtime, in_force, as_of, after, chunk_size)
        if last is None:
            return total
        if done.changed_anything:
            runtime.wake_relay()
        total += done
        after = last


async def _arrays_step(
    runtime: ServiceRuntime, in_force: RulesVersion, as_of: datetime, after: str, size: int
) -> tuple[ChunkDone, str | None]:
    """One chunk on arrays (SQLite): (what it did, the last customer id), None once past the
    last. SQLite has one writer at a time: nothing changes a row between read and write."""
    rules: StageRules = in_force.rules
    async with runtime.sessions() as session, session.begin():
        chunk = await load_buyer_columns_sqlite(session, after, size)
        if chunk is None:
            return NOTHING, None
        ids = chunk.customer_ids
        checked = review_chunk(chunk.columns, rules, to_microseconds(as_of))
        changed = checked.changed
        rewrite = (~changed & (checked.next_review_at != chunk.next_review_at)).nonzero()[0]
        await write_review_times(
            session, [ids[i] for i in rewrite], checked.next_review_at[rewrite]
        )
        done = await review_locked(session, rules, as_of, [ids[i] for i in changed.nonzero()[0]])
        await advance(session, in_force.version, len(ids), last_customer_id=ids[-1])
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
        await advance(session, in_force.version, len(ids), last_customer_id=ids[-1])
    return ChunkDone(len(ids), done.moved, done.raised, done.closed), ids[-1]
