"""A sweep chunk read as columns for ``domain.review_arrays``, and its review times written back.

The chunk (the customers due, or on SQLite the next buyers by id in the review of every buyer
after a rules change) is read with only the columns the review needs, times already as integer
microseconds computed by the database (no datetime object per value), and the review times
of the customers nothing else happened to are written in one statement per chunk. PostgreSQL
takes the faster way of ``sweep_postgres`` (one row of arrays); this module's SQL is SQLite's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    bindparam,
    cast,
    func,
    select,
    update,
)
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
    from_microseconds,
    reasons_mask,
)
from lifecycle_service.workflows.customer_rows import CUSTOMERS, WARNINGS
from lifecycle_service.workflows.sweep_postgres import (
    ChunkArrays,
    load_due_arrays,
    write_review_times_postgres,
)

_STAGE_CODES = {stage.value: code for code, stage in enumerate(STAGES)}
_TIER_CODES: dict[str | None, int] = {tier.value: code for code, tier in enumerate(TIERS)}
_TIER_CODES[None] = -1
_GRADE_CODES: dict[str | None, int] = {grade.value: code for code, grade in enumerate(GRADES)}
_GRADE_CODES[None] = -1
_STATUS_CODES = {status.value: code for code, status in enumerate(WARNING_STATUSES)}
_OPEN = (WarningStatus.OPEN.value, WarningStatus.UPDATED.value)


def _microseconds(column: Any) -> ColumnElement[int]:
    """A timestamp column as integer microseconds since the epoch, MISSING_TIME for NULL."""
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's format, UTC)
    seconds = cast(func.strftime("%s", func.substr(column, 1, 19)), Integer)
    value: ColumnElement[int] = seconds * 1_000_000 + cast(func.substr(column, 21, 6), Integer)
    return func.coalesce(value, int(MISSING_TIME))


async def load_due_columns(
    session: AsyncSession, as_of: Any, chunk_size: int
) -> ChunkArrays | None:
    """Up to ``chunk_size`` customers due at ``as_of`` (earliest first), None when none is."""
    if session.get_bind().dialect.name == "postgresql":
        return await load_due_arrays(session, as_of, chunk_size)
    c = CUSTOMERS.c
    return await _load_sqlite(
        session,
        _sqlite_columns().where(c.next_review_at <= as_of).order_by(c.next_review_at),
        chunk_size,
    )


async def load_buyer_columns_sqlite(
    session: AsyncSession, after: str, chunk_size: int
) -> ChunkArrays | None:
    """Up to ``chunk_size`` buyers after customer id ``after`` (in id order) on SQLite; None
    past the last. (PostgreSQL walks the table in physical order: ``rules_walk``.)"""
    c = CUSTOMERS.c
    query = _sqlite_columns().where(c.customer_id > after, c.last_purchase_at.is_not(None))
    # SQLite has one writer at a time: nothing changes a row between this read and the write.
    return await _load_sqlite(session, query.order_by(c.customer_id), chunk_size)


def _sqlite_columns() -> Select[Any]:
    c = CUSTOMERS.c
    return select(
        c.customer_id,
        c.stage,
        _microseconds(c.stage_since),
        _microseconds(c.first_purchase_at),
        _microseconds(c.last_purchase_at),
        c.order_count,
        c.average_order_value,
        c.last_order_value,
        c.expected_interpurchase_days,
        c.churn_risk,
        c.value_tier,
        c.grade,
        _microseconds(c.next_review_at),
    )


async def _load_sqlite(
    session: AsyncSession, query: Select[Any], chunk_size: int
) -> ChunkArrays | None:
    rows = (await session.execute(query.limit(chunk_size))).all()
    if not rows:
        return None
    (ids, stage, since, first, last, orders, average, last_value, rhythm, risk, tier, grade,
     review) = (list(column) for column in zip(*rows, strict=True))  # fmt: skip
    warning = await _warning_columns(session, ids)
    columns = CustomerColumns(
        stage=np.array([_STAGE_CODES[s] for s in stage], dtype=np.int8),
        stage_since=np.array(since, dtype=np.int64),
        first_purchase_at=np.array(first, dtype=np.int64),
        last_purchase_at=np.array(last, dtype=np.int64),
        order_count=np.array(orders, dtype=np.int64),
        average_order_value=np.array(average, dtype=np.float64),  # None becomes NaN
        last_order_value=np.array(last_value, dtype=np.float64),
        expected_interpurchase_days=np.array(rhythm, dtype=np.float64),
        churn_risk=np.array(risk, dtype=np.float64),
        value_tier=np.array([_TIER_CODES[t] for t in tier], dtype=np.int8),
        grade=np.array([_GRADE_CODES[g] for g in grade], dtype=np.int8),
        **warning,
    )
    return ChunkArrays(ids, np.array(review, dtype=np.int64), columns, None)


async def _warning_columns(session: AsyncSession, customer_ids: Sequence[str]) -> dict[str, Any]:
    """Each customer's current warning (the open one, else the latest closed) as columns."""
    size = len(customer_ids)
    status = np.full(size, -1, dtype=np.int8)
    raised = np.full(size, MISSING_TIME, dtype=np.int64)
    reasons = np.zeros(size, dtype=np.int8)
    tier = np.full(size, -1, dtype=np.int8)
    grade = np.full(size, -1, dtype=np.int8)
    action = np.zeros(size, dtype=np.int8)
    w = WARNINGS.c
    query = (
        select(
            w.customer_id,
            w.status,
            _microseconds(w.raised_at),
            w.reasons,
            w.value_tier,
            w.grade,
            w.recommended_action,
        )
        .where(w.customer_id.in_(list(customer_ids)))
        .order_by(w.raised_at)
    )
    position = {customer_id: i for i, customer_id in enumerate(customer_ids)}
    for row in await session.execute(query):
        i = position[row[0]]
        if status[i] in (_STATUS_CODES[_OPEN[0]], _STATUS_CODES[_OPEN[1]]):
            continue  # as customers_with_warnings: an open warning is the current one
        status[i] = _STATUS_CODES[row[1]]
        raised[i] = row[2]
        reasons[i] = reasons_mask(tuple(row[3]))
        tier[i] = _TIER_CODES[row[4]]
        grade[i] = _GRADE_CODES[row[5]]
        action[i] = row[6] == "account_manager_task"
    return {
        "warning_status": status,
        "warning_raised_at": raised,
        "warning_reasons": reasons,
        "warning_tier": tier,
        "warning_grade": grade,
        "warning_action": action,
    }


async def write_review_times(
    session: AsyncSession, customer_ids: Sequence[str], review_times: Ints
) -> None:
    """Store the review times (MISSING_TIME: none) of ``customer_ids``."""
    if not customer_ids:
        return
    if session.get_bind().dialect.name == "postgresql":
        await write_review_times_postgres(session, customer_ids, review_times)
        return
    await session.execute(
        update(CUSTOMERS)
        .where(CUSTOMERS.c.customer_id == bindparam("key"))
        .values(next_review_at=bindparam("review")),
        [
            {"key": key, "review": from_microseconds(t)}
            for key, t in zip(customer_ids, review_times.tolist(), strict=True)
        ],
    )
