"""A sweep chunk on PostgreSQL: read in one statement as arrays, review times written in one.

A chunk is either the customers due (locked, skipping a consumer's) or, in the review of
every buyer after a rules change, the buyers stored in a range of the table's blocks
(``rules_walk``), unlocked, with each row's xmin, xmax and tuple id as read, so that the write
can leave alone any row another transaction touched since. The ORM's row objects would cost
more than the review itself. Here the database does the conversions (stages, tiers, grades and
statuses to the codes of ``domain.review_arrays``, each customer's current warning chosen with
``DISTINCT ON``) and returns one row of arrays, one per column; the numeric and time arrays in
PostgreSQL's binary format, which numpy reads whole (``pg_binary_arrays``). The statements run
as plain driver SQL in the session's transaction: one row each, no per-row layers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle_service.domain.churn_warnings import WarningStatus
from lifecycle_service.domain.review_arrays import (
    GRADES,
    MISSING_TIME,
    STAGES,
    TIERS,
    WARNING_STATUSES,
    CustomerColumns,
    Ints,
    reasons_mask,
)
from lifecycle_service.workflows.pg_binary_arrays import (
    float_array,
    int_array,
    tid_array,
    tid_tuples,
    time_array,
)

_STAGES: Final = [stage.value for stage in STAGES]
_TIERS: Final = [tier.value for tier in TIERS]
_GRADES: Final = [grade.value for grade in GRADES]
_STATUSES: Final = [status.value for status in WARNING_STATUSES]
_OPEN: Final = (WarningStatus.OPEN.value, WarningStatus.UPDATED.value)


def _times(column: str) -> str:
    """SQL for a timestamp column as binary ``timestamptz[]``, -infinity for NULL."""
    return f"array_send(array_agg(coalesce({column}, '-infinity'::timestamptz)))"


def _floats(column: str) -> str:
    """SQL for a float column as binary ``float8[]``, NaN for NULL."""
    return f"array_send(array_agg(coalesce({column}, 'NaN'::float8)))"


def _codes(column: str, values: str) -> str:
    """SQL for the indexes of a text column's values in the array parameter as binary
    ``int2[]``, -1 for NULL."""
    code = f"(coalesce(array_position({values}::text[], {column}::text), 0) - 1)::int2"
    return f"array_send(array_agg({code}))"


_CUSTOMER_COLUMNS: Final = """customer_id, stage, stage_since, first_purchase_at,
    last_purchase_at, order_count, average_order_value, last_order_value,
    expected_interpurchase_days, churn_risk, value_tier, grade, next_review_at"""
# The time-due sweep: customers due by $1, earliest first, locked (a consumer's are skipped).
_DUE: Final = f"""
    SELECT {_CUSTOMER_COLUMNS}
    FROM customer_lifecycles
    WHERE next_review_at <= $1
    ORDER BY next_review_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED"""
# The review under new rules: the buyers stored in the blocks from tuple id $1 up to (not
# including) tuple id $2, in physical order (a TID range scan reads just those pages), not
# locked. Each row's xmin, xmax and tuple id as read are kept for the checked write (see
# _CHECKED_REVIEW_TIMES).
_WALK: Final = f"""
    SELECT {_CUSTOMER_COLUMNS}, xmin::text::int8 AS seen_xmin, xmax::text::int8 AS seen_xmax,
           ctid AS seen_tid
    FROM customer_lifecycles
    WHERE ctid >= $1::tid AND ctid < $2::tid AND last_purchase_at IS NOT NULL"""
_VERSIONS: Final = """,array_send(array_agg(seen_xmin)),
       array_send(array_agg(seen_xmax)),
       array_send(array_agg(seen_tid))"""
# The current warning is the open one (the earliest, should there be two), else the latest
# closed one: the rule of ``customer_rows.customers_with_warnings``.
_IS_OPEN = f"w.status IN {_OPEN!r}"


def _chunk(
    rows: str, order: str, versions: str, warned: str = "ARRAY(SELECT customer_id FROM due)"
) -> str:
    """One statement: the customers ``rows`` selects (in ``order``), with their current
    warnings (looked up for the ids in the array ``warned``), as arrays (binary where numpy
    reads them, see ``pg_binary_arrays``), and ``versions``."""
    return f"""
WITH due AS ({rows}
), current_warning AS (
    SELECT DISTINCT ON (w.customer_id)
           w.customer_id, w.status, w.raised_at, w.reasons, w.value_tier, w.grade,
           w.recommended_action
    FROM churn_warnings AS w
    WHERE w.customer_id = ANY({warned})
    ORDER BY w.customer_id, {_IS_OPEN} DESC,
             CASE WHEN {_IS_OPEN} THEN w.raised_at END, w.raised_at DESC
), chunk AS (
    SELECT d.*, w.status AS w_status, w.raised_at AS w_raised_at, w.reasons AS w_reasons,
           w.value_tier AS w_value_tier, w.grade AS w_grade,
           w.recommended_action AS w_action
    FROM due AS d LEFT JOIN current_warning AS w USING (customer_id)
    {order}
)
SELECT array_agg(customer_id),
       {_codes("stage", "$3")},
       {_times("stage_since")},
       {_times("first_purchase_at")},
       {_times("last_purchase_at")},
       array_send(array_agg(order_count)),
       {_floats("average_order_value")},
       {_floats("last_order_value")},
       {_floats("expected_interpurchase_days")},
       {_floats("churn_risk")},
       {_codes("value_tier", "$4")},
       {_codes("grade", "$5")},
       {_times("next_review_at")},
       {_codes("w_status", "$6")},
       {_times("w_raised_at")},
       array_agg(w_reasons::text),
       {_codes("w_value_tier", "$4")},
       {_codes("w_grade", "$5")},
       array_send(array_agg((coalesce(w_action, '') = 'account_manager_task')::int::int2))
       {versions}
FROM chunk
"""  # the interpolated parts are this module's constants


_DUE_CHUNK: Final = _chunk(_DUE, "ORDER BY d.customer_id", "")
# In physical order: the review needs no order, and sorting by key would cost a sort.
_WALK_CHUNK: Final = _chunk(_WALK, "", _VERSIONS)
# The same with the warnings looked up for the ids in $7, which the caller passes sorted: the
# index search sorts its array of keys first, and an array in physical (random) order of 5,000
# ids cost a statement at 1,000,000 customers half its time (EXPLAIN ANALYZE: 34-41 ms of
# lookup in random order, 18-21 ms sorted); sorted in Python it is checked in one pass.
_WALK_CHUNK_SORTED_IDS: Final = _chunk(_WALK, "", _VERSIONS, "$7::text[]")
# The ids of the buyers stored in a block range ($1, $2), as _WALK reads them.
_WALK_IDS: Final = (
    "SELECT array_agg(customer_id) FROM customer_lifecycles"
    " WHERE ctid >= $1::tid AND ctid < $2::tid AND last_purchase_at IS NOT NULL"
)


async def _run(session: AsyncSession, sql: str, *parameters: Any) -> Any:
    """``sql`` in the session's transaction, parameters by position (``$1``...).

    One statement per chunk and at most one row: SQLAlchemy's per-row costs do not apply.
    """
    connection = await session.connection()
    return await connection.exec_driver_sql(sql, parameters)


TupleId = tuple[int, int]  # (block, offset): where a row version is stored


@dataclass(frozen=True)
class RowVersions:
    """The row versions an unlocked read saw: each row's xmin, xmax and tuple id (a
    structured array of block and offset, see ``pg_binary_arrays.tid_array``)."""

    xmin: Ints
    xmax: Ints
    tids: Any


@dataclass(frozen=True)
class ChunkArrays:
    """A chunk's customers, their stored review times and review columns, and for an
    unlocked read the row versions seen (None when the rows are locked)."""

    customer_ids: list[str]
    next_review_at: Ints
    columns: CustomerColumns
    row_versions: RowVersions | None


async def load_due_arrays(session: AsyncSession, as_of: Any, chunk_size: int) -> ChunkArrays | None:
    """Up to ``chunk_size`` due customers, locked; None when none is due."""
    return await _load(session, _DUE_CHUNK, as_of, chunk_size)


async def load_block_range_arrays(
    session: AsyncSession, start: TupleId, end: TupleId
) -> ChunkArrays | None:
    """The buyers stored from tuple id ``start`` up to ``end`` (excluded), unlocked, with
    their row versions; None when there is none.

    Two statements: the range's ids, sorted here, then its rows with the warnings of those ids
    (one statement should the range's rows have changed in between)."""
    ids = (await _run(session, _WALK_IDS, start, end)).scalar_one()
    if ids is None:
        return None
    ids.sort()
    chunk = await _load(session, _WALK_CHUNK_SORTED_IDS, start, end, ids)
    if (
        chunk is not None
        and len(chunk.customer_ids) == len(ids)
        and set(chunk.customer_ids) == set(ids)
    ):
        return chunk
    # A row was written into or out of the range between the two statements: the warnings
    # looked up are not those of the rows read. Read it again in one statement.
    return await _load(session, _WALK_CHUNK, start, end)


async def _load(
    session: AsyncSession, sql: str, first: Any, second: Any, *more: Any
) -> ChunkArrays | None:
    result = await _run(session, sql, first, second, _STAGES, _TIERS, _GRADES, _STATUSES, *more)
    row = result.first()
    if row is None or row[0] is None:
        return None
    (ids, stage, since, first_at, last, orders, average, last_value, rhythm, risk, tier, grade,
     review, status, raised, reasons, w_tier, w_grade, action) = row[:19]  # fmt: skip
    columns = CustomerColumns(
        stage=_small(stage),
        stage_since=time_array(since),
        first_purchase_at=time_array(first_at),
        last_purchase_at=time_array(last),
        order_count=int_array(orders, ">i4"),
        average_order_value=float_array(average),
        last_order_value=float_array(last_value),
        expected_interpurchase_days=float_array(rhythm),
        churn_risk=float_array(risk),
        value_tier=_small(tier),
        grade=_small(grade),
        warning_status=_small(status),
        warning_raised_at=time_array(raised),
        warning_reasons=_reason_masks(reasons),
        warning_tier=_small(w_tier),
        warning_grade=_small(w_grade),
        warning_action=_small(action),
    )
    versions = None
    if len(row) > 19:
        xmins, xmaxes, tids = row[19:]
        versions = RowVersions(int_array(xmins), int_array(xmaxes), tid_array(tids))
    return ChunkArrays(list(ids), time_array(review), columns, versions)


def _small(codes: bytes) -> Any:
    """A binary ``int2[]`` of codes as int8."""
    return int_array(codes, ">i2").astype(np.int8)


def _reason_masks(reasons: Sequence[str | None]) -> Any:
    """The REASON_BITS of each stored reason list (JSON text), 0 where there is no warning."""
    masks = np.zeros(len(reasons), dtype=np.int8)
    for i, text in enumerate(reasons):
        if text is not None:
            masks[i] = reasons_mask(tuple(json.loads(text)))
    return masks


# Times travel as integers and become timestamps in the database; NULL stays NULL.
_REVIEW_TIMES: Final = (
    "UPDATE customer_lifecycles AS c"
    " SET next_review_at = to_timestamp(0) + v.us * interval '1 microsecond'"
    " FROM unnest($1::text[], $2::bigint[]) AS v(key, us) WHERE c.customer_id = v.key"
)
# Left to itself the planner may join a chunk's 5,000 keys by hashing the whole table (a
# sequential scan per chunk; EXPLAIN ANALYZE at 100,000 customers: 100 of the UPDATE's 290 ms)
# where 5,000 primary-key probes of cached pages are cheaper. Off until the chunk commits: the
# chunk's other statements look rows up by key too.
_NO_SEQUENTIAL_SCANS: Final = "SET LOCAL enable_seqscan = off"


async def write_review_times_postgres(
    session: AsyncSession, customer_ids: Sequence[str], review_times: Ints
) -> None:
    """Store the review times (MISSING_TIME: none) of ``customer_ids``, in one statement."""
    if not customer_ids:
        return
    # In key order, so the primary-key probes walk the index instead of jumping around it.
    rows = sorted(zip(customer_ids, review_times.tolist(), strict=True))
    keys = [key for key, _ in rows]
    times = [None if t == MISSING_TIME else t for _, t in rows]
    await _run(session, _NO_SEQUENTIAL_SCANS)
    await _run(session, _REVIEW_TIMES, keys, times)


# The optimistic write of a review under new rules: a row is written only if no transaction
# updated it (xmin; an updated row also leaves the tuple id read) or locked it (xmax: a consumer
# locks the customers of its batch before it changes them or their warnings) since the chunk
# read it. The row is found by the tuple id read (no index search), the key checked as well.
# The rows not written are returned to the caller, who reviews them again, locked.
_CHECKED_REVIEW_TIMES: Final = (
    "UPDATE customer_lifecycles AS c"
    " SET next_review_at = to_timestamp(0) + v.us * interval '1 microsecond'"
    " FROM unnest($1::tid[], $2::text[], $3::bigint[], $4::int8[], $5::int8[])"
    " AS v(tid, key, us, seen_xmin, seen_xmax)"
    " WHERE c.ctid = v.tid AND c.customer_id = v.key"
    " AND c.xmin = v.seen_xmin::text::xid AND c.xmax = v.seen_xmax::text::xid"
    " RETURNING c.customer_id"
)


@dataclass
class CheckedWrites:
    """Review times to write by :data:`_CHECKED_REVIEW_TIMES`, gathered over several ranges
    of a walk and written in key order.

    A walk in physical order meets keys in random order; written range by range, every write
    lands on a random leaf of the primary-key and ``(stage, customer_id)`` indexes, and at a
    million customers those leaves no longer stay in shared buffers (each write read a leaf
    in and wrote a dirty one out). Sorted over many ranges, the writes go through each index
    once per batch, several to a leaf.
    """

    _tids: list[Any] = dataclasses.field(default_factory=list)
    _keys: list[str] = dataclasses.field(default_factory=list)
    _times: list[Ints] = dataclasses.field(default_factory=list)
    _xmin: list[Ints] = dataclasses.field(default_factory=list)
    _xmax: list[Ints] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def keys(self) -> list[str]:
        """The customers kept, in the order they are written."""
        return self._keys

    def add(self, chunk: ChunkArrays, rows: Ints, review_times: Ints) -> None:
        """Keep the chunk's ``rows`` (indexes) to write ``review_times``, as they were read."""
        versions = chunk.row_versions
        if versions is None:
            raise ValueError("a checked write needs the row versions read")
        self._tids.append(versions.tids[rows])
        self._keys += [chunk.customer_ids[i] for i in rows.tolist()]
        self._times.append(review_times)
        self._xmin.append(versions.xmin[rows])
        self._xmax.append(versions.xmax[rows])

    def take_in_key_order(self, size: int) -> list[CheckedWrites]:
        """Everything kept, sorted by key and cut into batches of ``size``; empties this."""
        if not self._keys:
            return []
        order = np.argsort(np.array(self._keys, dtype=object), kind="stable")
        keys = [self._keys[i] for i in order.tolist()]
        tids, times = np.concatenate(self._tids)[order], np.concatenate(self._times)[order]
        xmin, xmax = np.concatenate(self._xmin)[order], np.concatenate(self._xmax)[order]
        for kept in (self._tids, self._keys, self._times, self._xmin, self._xmax):
            kept.clear()
        return [
            CheckedWrites(
                [tids[i : i + size]],
                keys[i : i + size],
                [times[i : i + size]],
                [xmin[i : i + size]],
                [xmax[i : i + size]],
            )
            for i in range(0, len(keys), size)
        ]

    async def write(self, session: AsyncSession) -> list[str]:
        """Store the review times of the rows nobody touched since they were read, in the
        order kept; the ids of the others."""
        if not self._keys:
            return []
        times = [None if t == MISSING_TIME else t for t in np.concatenate(self._times).tolist()]
        await _run(session, _NO_SEQUENTIAL_SCANS)
        result = await _run(
            session,
            _CHECKED_REVIEW_TIMES,
            tid_tuples(np.concatenate(self._tids)),
            self._keys,
            times,
            np.concatenate(self._xmin),
            np.concatenate(self._xmax),
        )
        written = {key for (key,) in result.all()}
        return [key for key in self._keys if key not in written]


# How far the table reaches now (its blocks) and how many rows a block holds by the last
# ANALYZE (None before one).
_EXTENT: Final = (
    "SELECT pg_relation_size('customer_lifecycles') / current_setting('block_size')::int,"
    " CASE WHEN relpages > 0 AND reltuples > 0 THEN reltuples / relpages END"
    " FROM pg_class WHERE oid = 'customer_lifecycles'::regclass"
)


async def table_extent(session: AsyncSession) -> tuple[int, float | None]:
    """The number of blocks of ``customer_lifecycles`` and its estimated rows per block."""
    blocks, rows_per_block = (await _run(session, _EXTENT)).one()
    return int(blocks), None if rows_per_block is None else float(rows_per_block)
