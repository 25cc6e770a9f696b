"""Reads behind the feedback analytics: NPS by segment, feedback counts by kind.

Both group ``customer_feedback`` in the database over its (survey, occurred_at) index; the
segment is the customer's lifecycle stage and value tier when the answer arrived.
"""

from __future__ import annotations

from collections import Counter
from typing import Final, Literal

from sqlalchemy import func, null, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import FeedbackKind, Survey
from crm_shared import DayPeriod
from lifecycle_service.db.models import CustomerFeedback
from lifecycle_service.domain.nps import NpsTally, tally
from lifecycle_service.domain.rules import UNKNOWN_TIER

SegmentBy = Literal["stage", "value_tier"]
_UNKNOWN: Final = UNKNOWN_TIER


async def nps(
    session: AsyncSession,
    period: DayPeriod,
    *,
    stage: str | None = None,
    value_tier: str | None = None,
    segment_by: SegmentBy | None = None,
) -> tuple[NpsTally, dict[str, NpsTally]]:
    """The NPS of the answers in ``period`` (filtered by segment), overall and per segment."""
    column = {"stage": CustomerFeedback.stage, "value_tier": CustomerFeedback.value_tier}
    segment = column[segment_by] if segment_by else None
    query = select(
        CustomerFeedback.score, segment if segment is not None else null(), func.count()
    ).where(
        CustomerFeedback.survey == Survey.NPS.value,
        CustomerFeedback.occurred_at >= period.start,
        CustomerFeedback.occurred_at < period.end,
    )
    if stage is not None:
        query = query.where(CustomerFeedback.stage == stage)
    if value_tier is not None:
        tier_filter = (
            CustomerFeedback.value_tier.is_(None)
            if value_tier == _UNKNOWN
            else CustomerFeedback.value_tier == value_tier
        )
        query = query.where(tier_filter)
    query = query.group_by(CustomerFeedback.score, *([segment] if segment is not None else []))
    per_segment: dict[str, list[tuple[int, int]]] = {}
    everyone: list[tuple[int, int]] = []
    for score, name, answers in (await session.execute(query)).all():
        if score is None:  # an NPS answer always has a score (the contract); never counted
            continue
        everyone.append((score, answers))
        if segment is not None:
            per_segment.setdefault(name or _UNKNOWN, []).append((score, answers))
    return tally(everyone), {name: tally(rows) for name, rows in sorted(per_segment.items())}


async def feedback_counts(session: AsyncSession, period: DayPeriod) -> Counter[str]:
    """Reports per kind in ``period`` (every kind, zeros included)."""
    rows = await session.execute(
        select(CustomerFeedback.kind, func.count())
        .where(
            CustomerFeedback.occurred_at >= period.start, CustomerFeedback.occurred_at < period.end
        )
        .group_by(CustomerFeedback.kind)
    )
    counts: Counter[str] = Counter(dict.fromkeys((kind.value for kind in FeedbackKind), 0))
    counts.update(dict(rows.all()))
    return counts
