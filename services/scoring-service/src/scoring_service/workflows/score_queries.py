"""Reading scores back: one customer, filtered lists, segment sizes."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Money, ScoreUpdated
from crm_shared.errors import NotFound
from scoring_service.api.schemas import (
    CustomerScores,
    RfmSegmentSize,
    SegmentSize,
    SegmentsOverview,
)
from scoring_service.db.models import Score
from scoring_service.domain.rfm import SEGMENT_DESCRIPTIONS
from scoring_service.workflows.model_store import active

_LEDGER_PLACES = Decimal("0.0001")  # the purchase ledger's scale (Numeric(18, 4))


def _out(row: Score) -> CustomerScores:
    return CustomerScores(
        customer_id=row.customer_id,
        as_of=row.as_of,
        model_version=row.model_version,
        scores=ScoreUpdated.model_validate(row.payload),
        explanation=row.explanation,
    )


async def scores_of(session: AsyncSession, customer_id: str) -> CustomerScores:
    """A customer's latest scores, or 404 when none were computed yet."""
    row = await session.get(Score, customer_id)
    if row is None:
        raise NotFound(f"No scores for customer {customer_id} (no purchase seen, or no model yet).")
    return _out(row)


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
) -> list[CustomerScores]:
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
    return [_out(row) for row in rows]


async def _sizes(session: AsyncSession, column: object) -> list[tuple[str, int]]:
    rows = await session.execute(
        select(column, func.count()).group_by(column).order_by(func.count().desc())  # type: ignore[call-overload]
    )
    return [(str(name), int(count)) for name, count in rows if name is not None]


def _exact(total: object) -> Decimal:
    # PostgreSQL sums numeric exactly; SQLite's NUMERIC sum is a float behind a Decimal with ten
    # places. Both are brought to the ledger's four places, so the amount is a valid Money.
    return Decimal(str(total)).quantize(_LEDGER_PLACES)


async def _rfm_sizes(session: AsyncSession) -> list[RfmSegmentSize]:
    """Customers and summed total spend (net of refunds) per RFM segment, per currency since a
    base may sell in several; one pass over ix_scores_segment_spend."""
    rows = await session.execute(
        select(
            Score.rfm_segment,
            Score.total_spend_currency,
            func.count(),
            func.sum(Score.total_spend),
        ).group_by(Score.rfm_segment, Score.total_spend_currency)
    )
    customers: dict[str, int] = defaultdict(int)
    revenue: dict[str, list[Money]] = defaultdict(list)
    for segment, code, count, total in rows:
        customers[segment] += int(count)
        if code is not None and total is not None:
            revenue[segment].append(Money(amount=_exact(total), currency=code))
    return [
        RfmSegmentSize(
            name=name,
            customers=count,
            description=SEGMENT_DESCRIPTIONS.get(name),
            revenue=sorted(revenue[name], key=lambda money: money.amount, reverse=True),
        )
        for name, count in sorted(customers.items(), key=lambda item: item[1], reverse=True)
    ]


async def segments_overview(session: AsyncSession) -> SegmentsOverview:
    """Sizes of RFM segments, tiers and grades, and the active model's cluster profiles."""
    model = await active(session)
    clusters = (model.thresholds.get("segmentation") or {}).get("clusters", []) if model else []
    counts = dict(await _sizes(session, Score.cluster))
    return SegmentsOverview(
        model_version=model.version if model else None,
        rfm_segments=await _rfm_sizes(session),
        clusters=[
            {**profile, "customers": counts.get(profile.get("name", ""), 0)} for profile in clusters
        ],
        value_tiers=[
            SegmentSize(name=n, customers=c) for n, c in await _sizes(session, Score.value_tier)
        ],
        grades=[SegmentSize(name=n, customers=c) for n, c in await _sizes(session, Score.grade)],
    )
