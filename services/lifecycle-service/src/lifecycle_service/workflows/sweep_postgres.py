"""A sweep chunk on PostgreSQL: read in one statement as arrays, review times written in one.

After a rules change every customer is due, and the ORM's row objects cost more than the
review itself. Here the database does the conversions (times to integer microseconds, stages,
tiers, grades and statuses to the codes of ``domain.review_arrays``, each customer's current
warning chosen with ``DISTINCT ON``) and returns one row of arrays, one per column, in
customer order; the driver decodes each into a list that numpy takes whole. The statements
run as plain driver SQL in the session's transaction: one row each, no per-row layers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
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


# The current warning is the open one (the earliest, should there be two), else the latest
# closed one: the rule of ``customer_rows.customers_with_warnings``.
_IS_OPEN = f"w.status IN {_OPEN!r}"
_CHUNK: Final = f"""
WITH due AS (
    SELECT customer_id, stage, stage_since, first_purchase_at, last_purchase_at, order_count,
           average_order_value, last_order_value, expected_interpurchase_days, churn_risk,
           value_tier, grade, next_review_at
    FROM customer_lifecycles
    WHERE next_review_at <= $1
    ORDER BY next_review_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
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
       array_agg(coalesce(w_action = 'account_manager_task', false)::int::int2)
FROM chunk
"""  # the interpolated parts are this module's constants


async def _run(session: AsyncSession, sql: str, *parameters: Any) -> Any:
    """``sql`` in the session's transaction, parameters by position (``$1``...).

    One statement per chunk and at most one row: SQLAlchemy's per-row costs do not apply.
    """
    connection = await session.connection()
    return await connection.exec_driver_sql(sql, parameters)


async def load_due_arrays(
    session: AsyncSession, as_of: Any, chunk_size: int
) -> tuple[list[str], Ints, CustomerColumns] | None:
    """Up to ``chunk_size`` due customers, locked: ids (sorted), review times and columns."""
    result = await _run(
        session, _CHUNK, as_of, int(MISSING_TIME), chunk_size, _STAGES, _TIERS, _GRADES, _STATUSES
    )
    row = result.first()
    if row is None or row[0] is None:
        return None
    (ids, stage, since, first, last, orders, average, last_value, rhythm, risk, tier, grade,
     review, status, raised, reasons, w_tier, w_grade, action) = row  # fmt: skip
    columns = CustomerColumns(
        stage=np.array(stage, dtype=np.int8),
        stage_since=np.array(since, dtype=np.int64),
        first_purchase_at=np.array(first, dtype=np.int64),
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
    return list(ids), np.array(review, dtype=np.int64), columns


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
