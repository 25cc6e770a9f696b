"""The review of every buyer on PostgreSQL: the table walked in physical order, unlocked.

Customer ids are random UUIDs, so a walk in id order jumps across the heap (about a page read
per row). This walk reads the table a range of blocks at a time (a TID range scan, PostgreSQL
14+), each page once:

- the buyers stored in the next range (about ``chunk_size`` of them) are read in one statement
  without locks (the event stream is not held up) and reviewed on arrays
  (``domain.review_arrays``);
- customers whose review time alone changes get it only where no transaction updated or
  locked the row since the read (xmin and xmax, see ``sweep_postgres``); on this workload about
  80% of buyers need no write at all. These writes are gathered over ranges (up to
  ``_WRITES_PER_ROUND`` times ``chunk_size`` of them, or ``_RANGES_PER_ROUND`` ranges) and
  written in key order (``CheckedWrites``), ``chunk_size`` rows per transaction: range by range
  they fell on random index leaves, which at a million customers do not stay in shared buffers;
- the few who move or whose warning changes, those locked when read and those a consumer
  touched meanwhile (the checked write passed them over) are then reviewed again, loaded
  locked, through the domain functions (``sweep_locked``), a quarter of ``chunk_size`` per
  transaction in key order, each transaction holding no other lock while it waits for a
  consumer's;
- the position after the round's last range is committed with the round's last transaction
  (``rules_reviews.walk_position``): a sweep that stops resumes there and reads again at most
  two rounds' ranges, the one finishing and the one being read (a review of what is already
  reviewed changes nothing);
- the steps overlap: the next two ranges are read while one is reviewed, and a round's writes and
  locked reviews run while the next round's ranges are read (rounds finish one at a time, in
  order), so PostgreSQL works on one core while Python works on the other.

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

import asyncio
import contextlib
import re
from collections import deque
from datetime import datetime
from typing import Final

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import ServiceRuntime
from lifecycle_service.domain.review_arrays import review_chunk, to_microseconds
from lifecycle_service.workflows.rules_review_progress import advance
from lifecycle_service.workflows.rules_store import RulesVersion
from lifecycle_service.workflows.sweep_locked import NOTHING, ChunkDone, review_locked
from lifecycle_service.workflows.sweep_postgres import (
    CheckedWrites,
    ChunkArrays,
    TupleId,
    load_block_range_arrays,
    table_extent,
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


# Rows whose review time alone changes, gathered over ranges (and written in key order, see
# ``CheckedWrites``) before the movers of those ranges are reviewed and the position committed,
# as a multiple of ``chunk_size``; and at most this many ranges between committed positions.
_WRITES_PER_ROUND: Final = 8
_RANGES_PER_ROUND: Final = 64
# Ranges read at once: PostgreSQL reads the next while Python reviews one and finishes a round.
_READ_AHEAD: Final = 2


async def walk_every_buyer(
    runtime: ServiceRuntime,
    in_force: RulesVersion,
    as_of: datetime,
    start: TupleId,
    *,
    chunk_size: int,
) -> ChunkDone:
    """Review every buyer stored from ``start`` on under ``in_force`` (under the sweep lock).

    Overlapped: the next two ranges are read while one is reviewed, and a round's writes and
    locked reviews run while the next round's ranges are read (rounds still one at a time,
    so positions are committed in order); PostgreSQL works on one core while Python works.
    """
    async with runtime.sessions() as session:
        end_block, rows_per_block = await table_extent(session)
    span = 1 if rows_per_block is None else max(1, round(chunk_size / rows_per_block))
    round_ = _Round(runtime, in_force, as_of, chunk_size)
    total = NOTHING
    position = start
    # Ranges being read: (end, blocks, task), in order; _READ_AHEAD of them at a time.
    reads: deque[tuple[TupleId, int, asyncio.Task[ChunkArrays | None]]] = deque()

    def read_next(blocks: int) -> None:
        nonlocal position
        upto = (min(position[0] + blocks, end_block), 0)
        reads.append((upto, blocks, asyncio.create_task(_read(runtime, position, upto))))
        position = upto

    while position[0] < end_block and len(reads) < _READ_AHEAD:
        read_next(span)
    finishing: asyncio.Task[ChunkDone] | None = None
    try:
        while reads:
            upto, blocks, reading = reads[0]
            chunk = await reading
            reads.popleft()
            rows = 0 if chunk is None else len(chunk.customer_ids)
            if position[0] < end_block:
                span = _next_span(chunk_size, blocks, rows)
                read_next(span)
            if chunk is not None:
                round_.review(chunk)
            total += ChunkDone(rows, 0, 0, 0)
            if round_.full or not reads:
                if finishing is not None:
                    total += await finishing
                finishing = asyncio.create_task(round_.finish(upto))
                round_ = _Round(runtime, in_force, as_of, chunk_size)
        if finishing is not None:
            total += await finishing
    finally:
        for task in [task for _, _, task in reads] + [finishing]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return total


async def _read(runtime: ServiceRuntime, start: TupleId, end: TupleId) -> ChunkArrays | None:
    async with runtime.sessions() as session, session.begin():
        return await load_block_range_arrays(session, start, end)


class _Round:
    """What the walk's ranges since the last committed position left to do: review times to
    write (in key order), customers to review locked; then the position is committed."""

    def __init__(
        self, runtime: ServiceRuntime, in_force: RulesVersion, as_of: datetime, chunk_size: int
    ) -> None:
        self.runtime, self.in_force, self.as_of = runtime, in_force, as_of
        self.chunk_size = chunk_size
        self.batch = max(1, chunk_size // 4)  # customers per locked transaction
        self.writes = CheckedWrites()
        self.again: set[str] = set()  # to review locked
        self.walked = 0  # customers reviewed after the last committed position
        self.ranges = 0

    @property
    def full(self) -> bool:
        return (
            len(self.writes) >= _WRITES_PER_ROUND * self.chunk_size
            or len(self.again) >= _WRITES_PER_ROUND * self.batch
            or self.ranges >= _RANGES_PER_ROUND
        )

    def review(self, chunk: ChunkArrays) -> None:
        """Review the chunk on arrays: keep the review times that alone change, and the
        customers to review again, locked."""
        versions = chunk.row_versions
        assert versions is not None  # an unlocked read keeps them
        checked = review_chunk(chunk.columns, self.in_force.rules, to_microseconds(self.as_of))
        # A row locked when read (xmax set, the locker perhaps still running, perhaps having
        # changed only the warnings) is reviewed locked with the movers.
        changed = checked.changed | (versions.xmax != 0)
        rewrite = (~changed & (checked.next_review_at != chunk.next_review_at)).nonzero()[0]
        self.writes.add(chunk, rewrite, checked.next_review_at[rewrite])
        ids = chunk.customer_ids
        self.again.update(ids[i] for i in changed.nonzero()[0].tolist())
        self.walked += len(ids)
        self.ranges += 1

    async def finish(self, upto: TupleId) -> ChunkDone:
        """Write the review times kept (only where nobody touched the row since it was read),
        review the others and the movers locked, and commit ``upto`` with the last of it."""
        sessions = self.runtime.sessions
        parts = self.writes.take_in_key_order(self.chunk_size)
        if not parts and not self.again:
            async with sessions() as session, session.begin():
                await self.record(session, upto)
            return NOTHING
        for i, part in enumerate(parts):
            async with sessions() as session, session.begin():
                self.again.update(await part.write(session))
                if i == len(parts) - 1 and not self.again:
                    await self.record(session, upto)
        ids = sorted(self.again)
        done = NOTHING
        for i in range(0, len(ids), self.batch):
            async with sessions() as session, session.begin():
                part_done = await review_locked(
                    session, self.in_force.rules, self.as_of, ids[i : i + self.batch]
                )
                if i + self.batch >= len(ids):
                    await self.record(session, upto)
            if part_done.changed_anything:
                self.runtime.wake_relay()
            done += part_done
        self.again.clear()
        return ChunkDone(0, done.moved, done.raised, done.closed)

    async def record(self, session: AsyncSession, upto: TupleId) -> None:
        """Commit with ``session`` that every customer before ``upto`` is reviewed."""
        await advance(
            session, self.in_force.version, self.walked, walk_position=format_position(upto)
        )
        self.walked, self.ranges = 0, 0


def _next_span(chunk_size: int, span: int, rows: int) -> int:
    """Blocks for about ``chunk_size`` buyers, by the last range's density (at most 4x more)."""
    if rows == 0:
        return span * 4
    return int(max(1, min(4 * span, np.rint(chunk_size * span / rows))))
