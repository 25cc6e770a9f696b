"""Reading scores back: one customer, filtered lists, segment sizes."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Money
from crm_shared import in_id_order, where_given
from crm_shared.errors import NotFound
from scoring_service.db.models import ModelVersion, Score
from scoring_service.workflows.model_store import active

_LEDGER_PLACES = Decimal("0.0001")  # the purchase ledger's scale (Numeric(18, 4))


async def scores_of(session: AsyncSession, customer_id: str) -> Score:
    """A customer's latest scores row, or 404 when none were computed yet."""
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
    """Score rows in customer-id order after a cursor position."""
    query = where_given(
        select(Score),
        (Score.rfm_segment, criteria.segment),
        (Score.value_tier, criteria.tier),
        (Score.grade, criteria.grade),
        (Score.cluster, criteria.cluster),
    )
    if criteria.churn_risk_min is not None:
        query = query.where(Score.churn_risk >= criteria.churn_risk_min)
    if criteria.churn_risk_max is not None:
        query = query.where(Score.churn_risk <= criteria.churn_risk_max)
    rows = await session.scalars(in_id_order(query, Score.customer_id, after_id).limit(limit))
    return list(rows)


def _exact(total: object) -> Decimal:
    # PostgreSQL sums numeric exactly; SQLite's NUMERIC sum is a float behind a Decimal with ten
    # places. Both are brought to the ledger's four places, so the amount is a valid Money.
    return Decimal(str(total)).quantize(_LEDGER_PLACES)


@dataclass
class _Tally:
    """Customers per value of each segment dimension, and spend per RFM segment and currency."""

    rfm: Counter[str] = field(default_factory=Counter)
    tiers: Counter[str] = field(default_factory=Counter)
    grades: Counter[str] = field(default_factory=Counter)
    clusters: Counter[str] = field(default_factory=Counter)
    revenue: dict[str, list[Money]] = field(default_factory=lambda: defaultdict(list))

    def add(self, row: Sequence[Any]) -> None:
        segment, currency, tier, grade, cluster, count, total = row
        for counter, name in (
            (self.rfm, segment),
            (self.tiers, tier),
            (self.grades, grade),
            (self.clusters, cluster),
        ):
            if name is not None:
                counter[name] += int(count)
        if currency is not None and total is not None:
            self.revenue[segment].append(Money(amount=_exact(total), currency=currency))


def _largest_first(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def _merged(amounts: list[Money]) -> list[Money]:
    """One amount per currency (a segment comes in rows per tier, grade, cluster); largest first."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for money in amounts:
        totals[money.currency] += money.amount
    merged = [Money(amount=amount, currency=code) for code, amount in totals.items()]
    return sorted(merged, key=lambda money: money.amount, reverse=True)


async def _tally(session: AsyncSession) -> _Tally:
    """Every segment size and the revenue per RFM segment from one grouped pass over the scores
    (on PostgreSQL an index-only scan of ix_scores_segment_sizes), summed up here: one scan
    instead of one per dimension."""
    dimensions = (
        Score.rfm_segment,
        Score.total_spend_currency,
        Score.value_tier,
        Score.grade,
        Score.cluster,
    )
    rows = await session.execute(
        select(*dimensions, func.count(), func.sum(Score.total_spend)).group_by(*dimensions)
    )
    tally = _Tally()
    for row in rows:
        tally.add(row)
    return tally


@dataclass(frozen=True)
class SegmentCounts:
    """How many customers each segment, cluster, tier and grade holds (largest first), the
    revenue of each RFM segment per currency, and the active model."""

    model: ModelVersion | None
    rfm_segments: list[tuple[str, int]]
    rfm_revenue: dict[str, list[Money]]
    clusters: dict[str, int]
    value_tiers: list[tuple[str, int]]
    grades: list[tuple[str, int]]


async def segment_counts(session: AsyncSession) -> SegmentCounts:
    """Sizes of RFM segments (with their revenue), clusters, tiers and grades, and the model."""
    model = await active(session)
    tally = await _tally(session)
    return SegmentCounts(
        model=model,
        rfm_segments=_largest_first(tally.rfm),
        rfm_revenue={name: _merged(amounts) for name, amounts in tally.revenue.items()},
        clusters=dict(tally.clusters),
        value_tiers=_largest_first(tally.tiers),
        grades=_largest_first(tally.grades),
    )
