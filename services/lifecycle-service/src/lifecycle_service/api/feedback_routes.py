"""``/v1/analytics/nps`` and ``/v1/analytics/feedback``: what customers told the shop.

The NPS lives here, beside the retention analytics, because lifecycle keeps every feedback
report with the customer's stage and value tier when it arrived (it needs the complaints for
its surge warning anyway), so "NPS of loyal customers last quarter" is one grouped read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from crm_contracts import Stage, ValueTier
from crm_shared import ReadAccess, SessionDep
from lifecycle_service.api.analytics_routes import PeriodDep
from lifecycle_service.api.analytics_schemas import Period
from lifecycle_service.domain.nps import NpsTally
from lifecycle_service.domain.rules import UNKNOWN_TIER
from lifecycle_service.workflows import feedback_analytics
from lifecycle_service.workflows.feedback_analytics import SegmentBy

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])


class NpsFigures(BaseModel):
    """NPS answers of a group: 9-10 promoters, 7-8 passives, 0-6 detractors."""

    answers: int = Field(examples=[120])
    promoters: int = Field(examples=[54])
    passives: int = Field(examples=[36])
    detractors: int = Field(examples=[30])
    nps: float | None = Field(
        description="100 * (promoters - detractors) / answers; null without answers.",
        examples=[20.0],
    )

    @classmethod
    def of(cls, figures: NpsTally) -> NpsFigures:
        """The figures of a tally."""
        return cls.model_validate(figures, from_attributes=True)


class SegmentNps(NpsFigures):
    """The NPS of one segment."""

    segment: str = Field(description="The stage or value tier (`unknown`: no tier yet).")


class NpsView(BaseModel):
    """Net Promoter Score over a period, for the customers asked for."""

    period: Period
    stage: Stage | None = Field(description="Only answers given in this stage; null: any.")
    value_tier: str | None = Field(description="Only answers given in this tier; null: any.")
    overall: NpsFigures
    segment_by: SegmentBy | None
    segments: list[SegmentNps] = Field(
        description="Per stage or value tier when segment_by is given, else empty."
    )


class FeedbackCountsView(BaseModel):
    """Feedback reports per kind over a period."""

    period: Period
    counts: dict[str, int] = Field(
        description="complaint, ticket_opened, ticket_resolved, survey_answer, return_requested",
        examples=[{"complaint": 12, "survey_answer": 120, "ticket_opened": 30}],
    )
    total: int


@router.get("/nps", response_model=NpsView, summary="Net Promoter Score by segment")
async def read_nps(
    session: SessionDep,
    _: ReadAccess,
    period: PeriodDep,
    stage: Annotated[Stage | None, Query(description="Answers given in this stage.")] = None,
    value_tier: Annotated[
        ValueTier | None, Query(description="Answers given in this value tier.")
    ] = None,
    unknown_tier: Annotated[
        bool, Query(description="Answers given before the customer had a value tier.")
    ] = False,
    segment_by: Annotated[
        SegmentBy | None, Query(description="Also break the NPS down by stage or value tier.")
    ] = None,
) -> NpsView:
    """Promoters minus detractors over NPS answers between ``from`` and ``to`` (both
    included; default: the last 30 days), with the counts behind it; segments are the
    customer's lifecycle stage and value tier when the answer arrived."""
    tier = UNKNOWN_TIER if unknown_tier else (value_tier.value if value_tier else None)
    overall, segments = await feedback_analytics.nps(
        session,
        period,
        stage=stage.value if stage else None,
        value_tier=tier,
        segment_by=segment_by,
    )
    return NpsView(
        period=Period(from_=period.first, to=period.last),
        stage=stage,
        value_tier=tier,
        overall=NpsFigures.of(overall),
        segment_by=segment_by,
        segments=[
            SegmentNps(segment=name, **NpsFigures.of(figures).model_dump())
            for name, figures in segments.items()
        ],
    )


@router.get("/feedback", response_model=FeedbackCountsView, summary="Feedback per kind")
async def read_feedback_counts(
    session: SessionDep, _: ReadAccess, period: PeriodDep
) -> FeedbackCountsView:
    """Complaints, tickets opened and resolved, survey answers and return requests received
    between ``from`` and ``to`` (both included; default: the last 30 days)."""
    counts = await feedback_analytics.feedback_counts(session, period)
    return FeedbackCountsView(
        period=Period(from_=period.first, to=period.last),
        counts=dict(counts),
        total=sum(counts.values()),
    )
