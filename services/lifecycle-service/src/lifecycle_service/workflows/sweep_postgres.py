"""A sweep chunk on PostgreSQL: read in one statement as arrays, review times written in one.

A chunk is either the customers due (locked, skipping a consumer's) or, in the review of
every buyer after a rules change, the next buyers by id, unlocked, with each row's xmin and
xmax as read, so that the write can leave alone any row another transaction touched since.
The ORM's row objects would cost more than the review itself. Here the database does the
conversions (times to integer microseconds, stages, tiers, grades and statuses to the codes of
``domain.review_arrays``, each customer's current warning chosen with ``DISTINCT ON``) and
returns one row of arrays, one per column, in customer order; the driver decodes each into a
list that numpy takes whole. The statements run as plain driver SQL in the session's
transaction: one row each, no per-row layers.
"""

from __future__ import annotations

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

_STAGES: Final = [stage.value for stage in STAGES]
_TIERS: Final = [tier.value for tier in TIERS]
_GRADES: Final = [grade.value for grade in GRADES]
_STATUSES: Final = [status.value for status in WARNING_STATUSES]
_OPEN: Final = (WarningStatus.OPEN.value, WarningStatus.UPDATED.value)


def _us(column: str) -> str:
    """SQL for a timestamp column as integer microseconds since the epoch, $2 for NULL."""
    return f"coalesce((extract(epoch FROM {column}) * 1000000)::bigint, $2)"


def _code(column: str, values: str) -> str:
    """SQL for the index of a text column's value in the array parameter, -1 for NULL."""
    return f"(coalesce(array_position({values}::text[], {column}::text), 0) - 1)::int2"


_CUSTOMER_COLUMNS: Final = """customer_id, stage, stage_since, first_purchase_at,
    last_purchase_at, order_count, average_order_value, last_order_value,
    expected_interpurchase_days, churn_risk, value_tier, grade, next_review_at"""
# The time-due sweep: customers due by $1, earliest first, locked (a consumer's are skipped).
_DUE: Final = f"""
    SELECT {_CUSTOMER_COLUMNS}, NULL::text AS seen_xmin, NULL::text AS seen_xmax
    FROM customer_lifecycles
    WHERE next_review_at <= $1
    ORDER BY next_review_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED"""
# The review under new rules: the next buyers after customer $1 in key order, not locked. The
# row's xmin and xmax as read are kept: a write checks them (see _CHECKED_REVIEW_TIMES).
_WALK: Final = f"""
    SELECT {_CUSTOMER_COLUMNS}, xmin::text AS seen_xmin, xmax::text AS seen_xmax
    FROM customer_lifecycles
    WHERE customer_id > $1 AND last_purchase_at IS NOT NULL
    ORDER BY customer_id
    LIMIT $3"""
# The current warning is the open one (the earliest, should there be two), else the latest
# closed one: the rule of ``customer_rows.customers_with_warnings``.
_IS_OPEN = f"w.status IN {_OPEN!r}"


def _chunk(rows: str) -> str:
    """One statement: the customers ``rows`` selects, with their current warnings, as arrays."""
    return f"""
WITH due AS ({rows}
), current_warning AS (
    SELECT DISTINCT ON (w.customer_id)
           w.customer_id, w.status, w.raised_at, w.reasons, w.value_tier, w.grade,
           w.recommended_action
    FROM churn_warnings AS w
    WHERE w.customer_id = ANY(ARRAY(SELECT customer_id FROM due))
    ORDER BY w.customer_id, {_IS_OPEN} DESC,
             CASE WHEN {_IS_OPEN} THEN w.raised_at END, w.raised_at DESC
), chunk AS (
    SELECT d.*, w.status AS w_status, w.raised_at AS w_raised_at, w.reasons AS w_reasons,
           w.value_tier AS w_value_tier, w.grade AS w_grade,
           w.recommended_action AS w_action
    FROM due AS d LEFT JOIN current_warning AS w USING (customer_id)
    ORDER BY d.customer_id
)
SELECT array_agg(customer_id),
       array_agg({_code("stage", "$4")}),
       array_agg({_us("stage_since")}),
       array_agg({_us("first_purchase_at")}),
       array_agg({_us("last_purchase_at")}),
       array_agg(order_count),
       array_agg(average_order_value),
       array_agg(last_order_value),
       array_agg(expected_interpurchase_days),
       array_agg(churn_risk),
       array_agg({_code("value_tier", "$5")}),
       array_agg({_code("grade", "$6")}),
       array_agg({_us("next_review_at")}),
       array_agg({_code("w_status", "$7")}),
       array_agg({_us("w_raised_at")}),
       array_agg(w_reasons::text),
       array_agg({_code("w_value_tier", "$5")}),
       array_agg({_code("w_grade", "$6")}),
       array_agg(coalesce(w_action = 'account_manager_task', false)::int::int2),
       array_agg(seen_xmin),
       array_agg(seen_xmax)
FROM chunk
"""  # the interpolated parts are this module's constants


_DUE_CHUNK: Final = _chunk(_DUE)
_WALK_CHUNK: Final = _chunk(_WALK)


async def _run(session: AsyncSession, sql: str, *parameters: Any) -> Any:
    """``sql`` in the session's transaction, parameters by position (``$1``...).

    One statement per chunk and at most one row: SQLAlchemy's per-row costs do not apply.
    """
    connection = await session.connection()
    return await connection.exec_driver_sql(sql, parameters)


@dataclass(frozen=True)
class ChunkArrays:
    """A chunk's customers (in id order), their stored review times and review columns, and
    for an unlocked read the row versions seen (xmin and xmax as text; None when locked)."""

    customer_ids: list[str]
    next_review_at: Ints
    columns: CustomerColumns
    row_versions: list[tuple[str, str]] | None


async def load_due_arrays(session: AsyncSession, as_of: Any, chunk_size: int) -> ChunkArrays | None:
    """Up to ``chunk_size`` due customers, locked; None when none is due."""
    return await _load(session, _DUE_CHUNK, as_of, chunk_size, locked=True)


async def load_buyer_arrays(
    session: AsyncSession, after: str, chunk_size: int
) -> ChunkArrays | None:
    """Up to ``chunk_size`` buyers after customer id ``after``, unlocked; None past the last."""
    return await _load(session, _WALK_CHUNK, after, chunk_size, locked=False)


async def _load(
    session: AsyncSession, sql: str, first: Any, chunk_size: int, *, locked: bool
) -> ChunkArrays | None:
    result = await _run(
        session, sql, first, int(MISSING_TIME), chunk_size, _STAGES, _TIERS, _GRADES, _STATUSES
    )
    row = result.first()
    if row is None or row[0] is None:
        return None
    (ids, stage, since, first_at, last, orders, average, last_value, rhythm, risk, tier, grade,
     review, status, raised, reasons, w_tier, w_grade, action, xmins, xmaxes) = row  # fmt: skip
    columns = CustomerColumns(
        stage=np.array(stage, dtype=np.int8),
        stage_since=np.array(since, dtype=np.int64),
        first_purchase_at=np.array(first_at, dtype=np.int64),
        last_purchase_at=np.array(last, dtype=np.int64),
        order_count=np.array(orders, dtype=np.int64),
        average_order_value=np.array(average, dtype=np.float64),  # None becomes NaN
        last_order_value=np.array(last_value, dtype=np.float64),
        expected_interpurchase_days=np.array(rhythm, dtype=np.float64),
        churn_risk=np.array(risk, dtype=np.float64),
        value_tier=np.array(tier, dtype=np.int8),
        grade=np.array(grade, dtype=np.int8),
        warning_status=np.array(status, dtype=np.int8),
        warning_raised_at=np.array(raised, dtype=np.int64),
        warning_reasons=_reason_masks(reasons),
        warning_tier=np.array(w_tier, dtype=np.int8),
        warning_grade=np.array(w_grade, dtype=np.int8),
        warning_action=np.array(action, dtype=np.int8),
    )
    versions = None if locked else list(zip(xmins, xmaxes, strict=True))
    return ChunkArrays(list(ids), np.array(review, dtype=np.int64), columns, versions)


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
# updated it (xmin) or locked it (xmax: a consumer locks the customers of its batch before it
# changes them or their warnings) since the chunk read it. The rows not written are returned
# to the caller, who reviews them again, locked.
_CHECKED_REVIEW_TIMES: Final = (
    "UPDATE customer_lifecycles AS c"
    " SET next_review_at = to_timestamp(0) + v.us * interval '1 microsecond'"
    " FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])"
    " AS v(key, us, seen_xmin, seen_xmax)"
    " WHERE c.customer_id = v.key AND c.xmin = v.seen_xmin::xid AND c.xmax = v.seen_xmax::xid"
    " RETURNING c.customer_id"
)


async def write_review_times_if_unchanged(
    session: AsyncSession,
    customer_ids: Sequence[str],
    review_times: Ints,
    row_versions: Sequence[tuple[str, str]],
) -> list[str]:
    """Store the review times of rows nobody touched since they were read; the others' ids."""
    if not customer_ids:
        return []
    rows = sorted(zip(customer_ids, review_times.tolist(), row_versions, strict=True))
    keys = [key for key, _, _ in rows]
    times = [None if t == MISSING_TIME else t for _, t, _ in rows]
    await _run(session, _NO_SEQUENTIAL_SCANS)
    result = await _run(
        session,
        _CHECKED_REVIEW_TIMES,
        keys,
        times,
        [xmin for _, _, (xmin, _) in rows],
        [xmax for _, _, (_, xmax) in rows],
    )
    written = {key for (key,) in result.all()}
    return [key for key in keys if key not in written]
