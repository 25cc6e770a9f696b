"""``/v1/scores``, ``/v1/segments`` and ``/v1/models``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from crm_shared import (
    AdminAccess,
    AfterId,
    Page,
    PageLimit,
    ReadAccess,
    RuntimeDep,
    SessionDep,
    decode_cursor,
    page_of,
    problem_responses,
    utc_now,
)
from crm_shared.errors import must_exist
from scoring_service.api import SettingsDep, responses
from scoring_service.api.schemas import (
    CustomerScores,
    FitRequest,
    ModelDetail,
    ModelSummary,
    SegmentsOverview,
)
from scoring_service.workflows import model_store, scoring
from scoring_service.workflows.score_queries import (
    ScoreFilter,
    list_scores,
    scores_of,
    segment_counts,
)

router = APIRouter(prefix="/v1")


@router.get(
    "/scores/{customer_id}",
    response_model=CustomerScores,
    tags=["scores"],
    summary="One customer",
    responses=problem_responses({404: "No purchase of this customer seen, or no model yet"}),
)
async def read_scores(customer_id: str, session: SessionDep, _: ReadAccess) -> CustomerScores:
    """RFM, CLV, churn risk, health, tier, grade and cluster, with the reasons behind them."""
    return responses.customer_scores(await scores_of(session, customer_id))


@router.get("/scores", response_model=Page[CustomerScores], tags=["scores"], summary="List scores")
async def list_all_scores(
    session: SessionDep,
    _: ReadAccess,
    segment: str | None = Query(default=None, description="RFM segment, e.g. Champions"),
    tier: str | None = Query(default=None, description="strategic_partner, growth, profit, basic"),
    grade: str | None = Query(default=None, description="vip, high, medium, low"),
    cluster: str | None = None,
    churn_risk_min: Annotated[float | None, Query(ge=0, le=1)] = None,
    churn_risk_max: Annotated[float | None, Query(ge=0, le=1)] = None,
    cursor: str | None = None,
    limit: PageLimit = 50,
) -> Page[CustomerScores]:
    """Customers' scores filtered by segment, tier, grade or churn-risk range; cursor-paginated."""
    position = decode_cursor(cursor, AfterId)
    criteria = ScoreFilter(segment, tier, grade, cluster, churn_risk_min, churn_risk_max)
    found = await list_scores(
        session, criteria, after_id=position.after if position else None, limit=limit + 1
    )
    return page_of(
        found, limit, lambda row: AfterId(after=row.customer_id), responses.customer_scores
    )


@router.get(
    "/segments", response_model=SegmentsOverview, tags=["segments"], summary="Segment sizes"
)
async def segments(session: SessionDep, _: ReadAccess) -> SegmentsOverview:
    """RFM segments, value tiers, grades and behavioural clusters with sizes and profiles."""
    return responses.segments_overview(await segment_counts(session))


@router.post(
    "/models/fit",
    response_model=ModelDetail,
    status_code=status.HTTP_201_CREATED,
    tags=["models"],
    summary="Fit the models and re-score the base",
    responses=problem_responses({409: "Another replica is fitting the models right now"}),
)
async def fit(
    body: FitRequest, settings: SettingsDep, runtime: RuntimeDep, _: AdminAccess
) -> ModelDetail:
    """Fits BG/NBD and Gamma-Gamma on purchases up to `as_of`, recomputes RFM, value and
    cluster thresholds, re-scores every customer and publishes what changed."""
    version = await scoring.fit_and_rescore(runtime, settings, as_of=body.as_of or utc_now())
    return responses.model_detail(version)


@router.get("/models", response_model=list[ModelSummary], tags=["models"], summary="Versions")
async def models(session: SessionDep, _: ReadAccess) -> list[ModelSummary]:
    """Fitted model versions, newest first."""
    return [responses.model_summary(m) for m in await model_store.all_versions(session)]


@router.get(
    "/models/{version}",
    response_model=ModelDetail,
    tags=["models"],
    summary="One version",
    responses=problem_responses({404: "No such model version"}),
)
async def model(version: str, session: SessionDep, _: ReadAccess) -> ModelDetail:
    """Parameters, log-likelihoods, customers, as-of time, fit duration and thresholds."""
    found = must_exist(
        await model_store.by_version(session, version), f"No model version {version}."
    )
    return responses.model_detail(found)
