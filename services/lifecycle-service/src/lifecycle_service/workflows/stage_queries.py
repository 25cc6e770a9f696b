"""Reads: one customer's stage and history, customers by stage, warnings, sweeps, dry run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import BindParameter, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Stage
from crm_shared import TimeWindow, in_id_order, newest_first, where_given, within
from crm_shared.rule_documents import InvalidRuleDocument
from lifecycle_service.db.models import (
    ChurnWarningRow,
    CustomerLifecycleRow,
    StageTransition,
    SweepRun,
)
from lifecycle_service.domain.dry_run import DryRunReport, dry_run
from lifecycle_service.domain.rules import StageRules, validate_rules
from lifecycle_service.domain.stages import CustomerLifecycle
from lifecycle_service.workflows.customer_rows import CUSTOMERS, OPEN_STATUSES, state_of

_DRY_RUN_CHUNK = 10_000


async def customer_with_history(
    session: AsyncSession, customer_id: str
) -> tuple[CustomerLifecycleRow, list[StageTransition], ChurnWarningRow | None] | None:
    """The customer's row, stage history (oldest first) and open warning; None if unknown."""
    row = await session.get(CustomerLifecycleRow, customer_id)
    if row is None:
        return None
    history = await session.scalars(
        select(StageTransition)
        .where(StageTransition.customer_id == customer_id)
        .order_by(StageTransition.at, StageTransition.id)
    )
    warning = await session.scalar(
        select(ChurnWarningRow).where(
            ChurnWarningRow.customer_id == customer_id,
            ChurnWarningRow.status.in_(OPEN_STATUSES),
        )
    )
    return row, list(history), warning


async def customers_in_stage(
    session: AsyncSession, stage: Stage, *, after_id: str | None, limit: int
) -> list[CustomerLifecycleRow]:
    """Customers in ``stage`` ordered by id, after ``after_id`` (keyset pagination)."""
    query = select(CustomerLifecycleRow).where(CustomerLifecycleRow.stage == stage.value)
    query = in_id_order(query, CustomerLifecycleRow.customer_id, after_id)
    return list(await session.scalars(query.limit(limit)))


@dataclass(frozen=True)
class WarningFilter:
    """Criteria of the warnings list; None (or an open side of ``raised``) means any."""

    status: str | None = None
    tier: str | None = None
    customer_id: str | None = None
    raised: TimeWindow = field(default_factory=TimeWindow)


async def list_warnings(
    session: AsyncSession,
    criteria: WarningFilter,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[ChurnWarningRow]:
    """Warnings newest first (by raised time, then id), after the ``after`` cursor position."""
    query = select(ChurnWarningRow)
    if criteria.status == "open":
        query = query.where(ChurnWarningRow.status.in_(OPEN_STATUSES))
    elif criteria.status is not None:
        query = query.where(ChurnWarningRow.status == criteria.status)
    query = where_given(
        query,
        (ChurnWarningRow.value_tier, criteria.tier),
        (ChurnWarningRow.customer_id, criteria.customer_id),
    )
    query = within(query, ChurnWarningRow.raised_at, criteria.raised)
    query = newest_first(query, ChurnWarningRow.raised_at, ChurnWarningRow.warning_id, after)
    return list(await session.scalars(query.limit(limit)))


async def open_warnings_by_value_at_risk(
    session: AsyncSession, limit: int
) -> list[tuple[ChurnWarningRow, str | None]]:
    """Open warnings with the customer's stage, the largest 12-month CLV at risk (predicted
    CLV x churn risk) first; warnings without both figures last, newest first among equals."""
    at_risk = ChurnWarningRow.predicted_clv_12m * ChurnWarningRow.churn_risk
    # The statuses go in as literals and the order is the index's own: PostgreSQL then reads
    # ix_churn_warnings_open_at_risk in order (a generic plan cannot match a partial index's
    # predicate against bound parameters) and stops at `limit`, with no sort.
    open_statuses: BindParameter[list[str]] = bindparam(
        "open_statuses", list(OPEN_STATUSES), expanding=True, literal_execute=True
    )
    query = (
        select(ChurnWarningRow, CustomerLifecycleRow.stage)
        .outerjoin(
            CustomerLifecycleRow,
            CustomerLifecycleRow.customer_id == ChurnWarningRow.customer_id,
        )
        .where(ChurnWarningRow.status.in_(open_statuses))
        .order_by(
            at_risk.is_(None),
            at_risk.desc(),
            ChurnWarningRow.raised_at.desc(),
            ChurnWarningRow.warning_id,
        )
        .limit(limit)
    )
    return [(row, stage) for row, stage in (await session.execute(query)).all()]


async def recent_sweeps(session: AsyncSession, limit: int) -> list[SweepRun]:
    """The latest sweeps, newest first."""
    query = select(SweepRun).order_by(SweepRun.id.desc()).limit(limit)
    return list(await session.scalars(query))


async def dry_run_over_base(
    session: AsyncSession, current: StageRules, candidate: StageRules, now: datetime
) -> DryRunReport:
    """The domain dry run over every stored customer, a chunk at a time (memory stays flat).

    Raises :class:`InvalidRuleDocument` for invalid candidate rules, even over an empty base.
    """
    problems = validate_rules(candidate)
    if problems:
        raise InvalidRuleDocument(problems)
    total = DryRunReport(now, 0, {}, {}, 0, 0)
    async for chunk in _state_chunks(session):
        total = total.plus(dry_run(chunk, current, candidate, now))
    return total


async def _state_chunks(session: AsyncSession) -> AsyncIterator[list[CustomerLifecycle]]:
    after = ""
    while True:
        rows = (
            await session.execute(
                select(CUSTOMERS)
                .where(CUSTOMERS.c.customer_id > after)
                .order_by(CUSTOMERS.c.customer_id)
                .limit(_DRY_RUN_CHUNK)
            )
        ).all()
        if not rows:
            return
        yield [state_of(row) for row in rows]
        after = rows[-1].customer_id
