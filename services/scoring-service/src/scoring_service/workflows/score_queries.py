"""Reading scores back: one customer, filtered lists, segment sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.errors import NotFound
from scoring_service.db.models import Score
from scoring_service.domain.rfm import SEGMENT_DESCRIPTIONS
from scoring_service.workflows.model_store import active


async def scores_of(session: AsyncSession, customer_id: str) -> Score:
    """A customer's latest scores, or 404 when none were computed yet."""
    row = await session.get(Score, customer_id)
    if row is None:
        raise NotFound(f"No scores for customer {customer_id} (no purchase seen, or no model yet).")
    return row


@dataclass(frozen=True)
class ScoreFilter:
    """What a score list is narrowed to."""

    segment: str | None = None
    tier: str | None = None
    grade: str | None = None
    cluster: str | None = None
    churn_risk_min: float | None = None
    churn_risk_max: float | None = None


async def list_scores(
    session: AsyncSession, criteria: ScoreFilter, *, after_id: str | None, limit: int
) -> list[Score]:
    """Scores in customer-id order after a cursor position."""
    query = select(Score)
    if criteria.segment is not None:
        query = query.where(Score.rfm_segment == criteria.segment)
    if criteria.tier is not None:
        query = query.where(Score.value_tier == criteria.tier)
    if criteria.grade is not None:
        query = query.where(Score.grade == criteria.grade)
    if criteria.cluster is not None:
        query = query.where(Score.cluster == criteria.cluster)
    if criteria.churn_risk_min is not None:
        query = query.where(Score.churn_risk >= criteria.churn_risk_min)
    if criteria.churn_risk_max is not None:
        query = query.where(Score.churn_risk <= criteria.churn_risk_max)
    if after_id is not None:
        query = query.where(Score.customer_id > after_id)
    rows = await session.scalars(query.order_by(Score.customer_id).limit(limit))
    return list(rows)


class SegmentCount(NamedTuple):
    """How many customers a segment holds."""

    name: str
    customers: int
    description: str | None = None


@dataclass(frozen=True)
class SegmentCounts:
    """Customers per RFM segment, value tier and grade, and the active model's clusters."""

    model_version: str | None
    rfm_segments: list[SegmentCount]
    clusters: list[dict[str, Any]]
    value_tiers: list[SegmentCount]
    grades: list[SegmentCount]


async def _sizes(session: AsyncSession, column: object) -> list[tuple[str, int]]:
    rows = await session.execute(
        select(column, func.count()).group_by(column).order_by(func.count().desc())  # type: ignore[call-overload]
    )
    return [(str(name), int(count)) for name, count in rows if name is not None]


async def segments_overview(session: AsyncSession) -> SegmentCounts:
    """Sizes of RFM segments, tiers and grades, and the active model's cluster profiles."""
    model = await active(session)
    rfm = await _sizes(session, Score.rfm_segment)
    clusters = (model.thresholds.get("segmentation") or {}).get("clusters", []) if model else []
    counts = dict(await _sizes(session, Score.cluster))
    return SegmentCounts(
        model_version=model.version if model else None,
        rfm_segments=[SegmentCount(n, c, SEGMENT_DESCRIPTIONS.get(n)) for n, c in rfm],
        clusters=[
            {**profile, "customers": counts.get(profile.get("name", ""), 0)} for profile in clusters
        ],
        value_tiers=[SegmentCount(n, c) for n, c in await _sizes(session, Score.value_tier)],
        grades=[SegmentCount(n, c) for n, c in await _sizes(session, Score.grade)],
    )
