"""The review of every buyer on PostgreSQL: the table walked in physical order, unlocked.

Customer ids are random UUIDs, so a walk in id order jumps across the heap (about a page read
per row). This walk reads the table a range of blocks at a time (a TID range scan, PostgreSQL
14+), each page once:

- the buyers stored in the next range (about ``chunk_size`` of them) are read in one statement
  without locks (the event stream is not held up) and reviewed on arrays
  (``domain.review_arrays``);
- customers whose review time alone changes get it in one statement, by tuple id, only where
  no transaction updated or locked the row since the read (xmin and xmax, see
  ``sweep_postgres``); on this workload about 80% of buyers need no write at all;
- the few who move or whose warning changes, those locked when read and those a consumer
  touched meanwhile are reviewed again, loaded locked, through the domain functions
  (``sweep_locked``): gathered over chunks, a quarter of ``chunk_size`` per transaction, which
  holds no other lock while it waits for a consumer's;
- the position after the last range whose customers are all reviewed is committed with the
  last transaction of that range (``rules_reviews.walk_position``): a sweep that stops resumes
  there and reads again at most the ranges whose movers it had not reviewed (a review of what
  is already reviewed changes nothing).

What a walk in physical order leaves, which a walk by id did not: a row version lives at one
place, and an UPDATE writes a new version elsewhere. So
- a customer that a consumer changes during the walk, from a block not yet read into one
  already passed (or past the walk's end, the table's size when the walk started), is not read
  by the walk. The consumer reviewed it under the rules it read: the rules in force, unless
  its batch read them before the change committed and commits during the walk; such a batch's
  customers keep review times of the old rules until they are next due or changed (the id walk
  had this window only for customers it had passed; here it is any customer the batch moved
  backwards). Customers inserted during the walk are the consumers' in both walks.
- a row rewritten (by this walk or a consumer) into a block the walk has yet to read is read
  again: it is reviewed already (nothing is written), but counted twice in ``reviewed``.
The walk's own rewrites go wherever PostgreSQL finds room, often past the walk's end.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import ServiceRuntime
from lifecycle_service.domain.review_arrays import review_chunk, to_microseconds
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.workflows.rules_review_progress import advance
from lifecycle_service.workflows.rules_store import RulesVersion
from lifecycle_service.workflows.sweep_locked import NOTHING, ChunkDone, review_locked
from lifecycle_service.workflows.sweep_postgres import (
    ChunkArrays,
    TupleId,
    load_block_range_arrays,
    table_extent,
    write_review_times_if_unchanged,
)

START: Final[TupleId] = (0, 0)
_POSITION: Final = re.compile(r"\((\d+),(\d+)\)")


def parse_position(text: str | None) -> TupleId:
    """A stored walk position ``"(block,offset)"``; the table's start for None."""
    if text is None:
        return START
    match = _POSITION.fullmatch(text)
    if match is None:
        raise ValueError(f"not a walk position: {text!r}")
    return int(match[1]), int(match[2])


def format_position(position: TupleId) -> str:
    """``position`` as stored (PostgreSQL's text form of a tuple id)."""
    return f"({position[0]},{position[1]})"


async def walk_every_buyer(
    runtime: ServiceRuntime,
    in_force: RulesVersion,
    as_of: datetime,
    start: TupleId,
    *,
    chunk_size: int,
) -> ChunkDone:
    """Review every buyer stored from ``start`` on under ``in_force`` (under the sweep lock)."""
    rules, version = in_force.rules, in_force.version
    async with runtime.sessions() as session:
        end_block, rows_per_block = await table_extent(session)
    span = 1 if rows_per_block is None else max(1, round(chunk_size / rows_per_block))
    batch = max(1, chunk_size // 4)
    position = start
    again: set[str] = set()  # to review locked with the next batch
    unrecorded = 0  # customers reviewed after the last committed position
    total = NOTHING
    while position[0] < end_block:
        upto = (min(position[0] + span, end_block), 0)
        async with runtime.sessions() as session, session.begin():
            chunk = await load_block_range_arrays(session, position, upto)
            if chunk is not None:
                again |= await _write_review_times(session, chunk, rules, as_of)
                unrecorded += len(chunk.customer_ids)
                if not again:
                    await advance(session, version, unrecorded, walk_position=format_position(upto))
                    unrecorded = 0
        rows = 0 if chunk is None else len(chunk.customer_ids)
        total += ChunkDone(rows, 0, 0, 0)
        span = _next_span(chunk_size, span, rows)
        position = upto
        if len(again) >= batch or (again and position[0] >= end_block):
            async with runtime.sessions() as session, session.begin():
                done = await review_locked(session, rules, as_of, sorted(again))
                await advance(session, version, unrecorded, walk_position=format_position(upto))
            if done.changed_anything:
                runtime.wake_relay()
            total += ChunkDone(0, done.moved, done.raised, done.closed)
            again, unrecorded = set(), 0
    return total


async def _write_review_times(
    session: AsyncSession, chunk: ChunkArrays, rules: StageRules, as_of: datetime
) -> set[str]:
    """Review the chunk on arrays and write the review times that alone change; the ids of
    the customers to review again, locked."""
    versions = chunk.row_versions
    assert versions is not None  # an unlocked read keeps them
    checked = review_chunk(chunk.columns, rules, to_microseconds(as_of))
    # A row locked when read (xmax set, the locker perhaps still running, perhaps having
    # changed only the warnings) is reviewed locked with the movers.
    changed = checked.changed | (versions.xmax != 0)
    rewrite = (~changed & (checked.next_review_at != chunk.next_review_at)).nonzero()[0]
    left = await write_review_times_if_unchanged(
        session, chunk, rewrite, checked.next_review_at[rewrite]
    )
    ids = chunk.customer_ids
    return {ids[i] for i in changed.nonzero()[0].tolist()} | set(left)


def _next_span(chunk_size: int, span: int, rows: int) -> int:
    """Blocks for about ``chunk_size`` buyers, by the last range's density (at most 4x more)."""
    if rows == 0:
        return span * 4
    return int(max(1, min(4 * span, np.rint(chunk_size * span / rows))))
