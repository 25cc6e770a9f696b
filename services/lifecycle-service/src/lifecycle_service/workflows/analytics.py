"""Reads behind the retention analytics: stage counts, transitions, cohorts, rates, warnings.

Each answer comes from the running counts written with every change (``workflows.changes``):
rows per day and metric, per day and pair of stages, per cohort cell, so a request reads a
few thousand small rows whatever the number of customers. Warning outcomes are grouped over
``churn_warnings`` through its (status, value_tier) and raised_at indexes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Stage, ValueTier
from crm_shared import DayPeriod, TimeWindow, within
from lifecycle_service.db.models import ChurnWarningRow, CohortCell, DailyCount, TransitionCount
from lifecycle_service.domain.churn_warnings import WarningStatus
from lifecycle_service.domain.counts import BUYERS, REPEAT_BUYERS, stage_metric
from lifecycle_service.domain.retention import (
    CohortRetention,
    RetentionRates,
    WarningOutcome,
)
from lifecycle_service.domain.rules import UNKNOWN_TIER

__all__ = [
    "RETAINED_STAGES",
    "TIERS",
    "CohortRetention",
    "CohortTable",
    "MonthRange",
    "RetentionRates",
    "StageMoves",
    "WarningOutcome",
    "cohort_retention",
    "retention_rates",
    "stage_counts",
    "transitions",
    "warning_outcomes",
]

# Buyers still in the relationship: every stage but prospect (never bought) and churned.
RETAINED_STAGES: Final = (
    Stage.NEW,
    Stage.ACTIVE,
    Stage.LOYAL,
    Stage.AT_RISK,
    Stage.DORMANT,
    Stage.WON_BACK,
)
TIERS: Final = (*(tier.value for tier in ValueTier), UNKNOWN_TIER)

StageMoves = Counter[tuple[Stage | None, Stage]]
"""Customers per (from stage, to stage); from None: newly known."""


@dataclass(frozen=True)
class MonthRange:
    """Months (``counts.month_index``) from ``first`` to ``last``, both included."""

    first: int
    last: int


async def stage_counts(session: AsyncSession, on: date) -> dict[Stage, int]:
    """Customers in each stage at the end of ``on``, every stage listed."""
    totals = await _metric_totals(session, on)
    return {stage: totals.get(stage_metric(stage), 0) for stage in Stage}


async def _metric_totals(session: AsyncSession, on: date) -> dict[str, int]:
    """Every counted metric at the end of ``on``: the sum of its daily deltas up to that day."""
    query = (
        select(DailyCount.metric, func.sum(DailyCount.delta))
        .where(DailyCount.day <= on)
        .group_by(DailyCount.metric)
    )
    return {metric: int(total) for metric, total in await session.execute(query)}


async def transitions(session: AsyncSession, period: DayPeriod) -> StageMoves:
    """Stage moves made on the days of ``period``."""
    query = (
        select(
            TransitionCount.previous_stage,
            TransitionCount.stage,
            func.sum(TransitionCount.customers),
        )
        .where(TransitionCount.day.between(period.first, period.last))
        .group_by(TransitionCount.previous_stage, TransitionCount.stage)
    )
    moves: StageMoves = Counter()
    for previous, stage, customers in await session.execute(query):
        # "" is how the counts store "no previous stage" (part of the primary key, never null).
        moves[(Stage(previous) if previous else None, Stage(stage))] += int(customers)
    return +moves


@dataclass(frozen=True)
class CohortTable:
    """Cohorts side by side, each followed up to ``through_month``."""

    through_month: int
    cohorts: list[CohortRetention]


async def cohort_retention(
    session: AsyncSession, cohorts: MonthRange, current_month: int
) -> CohortTable:
    """Each cohort of ``cohorts``, followed up to the current month (or later data)."""
    query = select(CohortCell.cohort_month, CohortCell.active_month, CohortCell.customers).where(
        CohortCell.cohort_month.between(cohorts.first, cohorts.last)
    )
    cells = {(cohort, active): n for cohort, active, n in await session.execute(query)}
    # Up to now, so months nobody bought in show as zeros rather than missing; replayed
    # future-dated history is shown too.
    through = max([current_month, *(active for _, active in cells)])
    return CohortTable(
        through,
        [
            CohortRetention(
                cohort, tuple(cells.get((cohort, month), 0) for month in range(cohort, through + 1))
            )
            for cohort in range(cohorts.first, cohorts.last + 1)
        ],
    )


async def retention_rates(session: AsyncSession, period: DayPeriod) -> RetentionRates:
    """Retained customers before and at the end of ``period`` and the moves made in it."""
    start = await _metric_totals(session, period.first - timedelta(days=1))
    end = await _metric_totals(session, period.last)
    moves = await transitions(session, period)
    return RetentionRates(
        customers_at_start=_retained(start),
        customers_at_end=_retained(end),
        new_buyers=moves[(None, Stage.NEW)] + moves[(Stage.PROSPECT, Stage.NEW)],
        churned=sum(n for (_, stage), n in moves.items() if stage is Stage.CHURNED),
        reactivated=moves[(Stage.CHURNED, Stage.WON_BACK)],
        buyers_at_end=end.get(BUYERS, 0),
        repeat_buyers_at_end=end.get(REPEAT_BUYERS, 0),
    )


def _retained(totals: dict[str, int]) -> int:
    return sum(totals.get(stage_metric(stage), 0) for stage in RETAINED_STAGES)


async def warning_outcomes(session: AsyncSession, raised: TimeWindow) -> dict[str, WarningOutcome]:
    """Outcomes per value tier (every tier listed; ``unknown``: no tier) of warnings ``raised``
    in the window."""
    query = select(ChurnWarningRow.value_tier, ChurnWarningRow.status, func.count()).group_by(
        ChurnWarningRow.value_tier, ChurnWarningRow.status
    )
    query = within(query, ChurnWarningRow.raised_at, raised)
    outcomes = dict.fromkeys(TIERS, WarningOutcome())
    for tier, status, count in await session.execute(query):
        key = tier or UNKNOWN_TIER
        outcomes[key] = outcomes.get(key, WarningOutcome()) + _outcome(status, int(count))
    return outcomes


def _outcome(status: str, count: int) -> WarningOutcome:
    if status == WarningStatus.SAVED:
        return WarningOutcome(saved=count)
    if status == WarningStatus.LOST:
        return WarningOutcome(lost=count)
    if status == WarningStatus.WITHDRAWN:
        # The customer objected to profiling: no outcome of retention, left out of the rate.
        return WarningOutcome()
    return WarningOutcome(open=count)  # open or updated: both still open
