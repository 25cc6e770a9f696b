"""``/v1/customers/{id}/activities`` and ``/feedback``: behaviour and feedback intake over HTTP.

For shops, help desks and survey tools that cannot publish to Kafka (those that can publish
``activity.recorded`` and ``feedback.recorded`` to ``crm.activities`` themselves, judged by the
same contract).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, status
from fastapi.responses import JSONResponse

from crm_contracts import ActivityFacts, FeedbackFacts
from crm_shared import SessionDep, WriteAccess, problem_responses, utc_now
from profile_service.api._common import CUSTOMER_PROBLEMS
from profile_service.api.schemas import ReportAccepted
from profile_service.workflows.activities import accept_report

router = APIRouter(prefix="/v1/customers", tags=["activities and feedback"])

CustomerPath = Annotated[str, Path(min_length=1, max_length=36)]
_RESPONSES = {
    200: {"description": "The same report was accepted before"},
    **CUSTOMER_PROBLEMS,
    **problem_responses({409: "This id was accepted before with different content"}),
}
_FEEDBACK_EXAMPLES = {
    "complaint": {
        "summary": "A complaint about an order",
        "value": {
            "feedback_id": "fb-1001",
            "kind": "complaint",
            "occurred_at": "2026-11-20T14:03:00Z",
            "order_id": "ord-1001",
            "about": "late_delivery",
        },
    },
    "nps": {
        "summary": "An NPS answer (0-6 detractor, 9-10 promoter)",
        "value": {
            "feedback_id": "fb-1002",
            "kind": "survey_answer",
            "occurred_at": "2026-11-21T08:00:00Z",
            "survey": "nps",
            "score": 4,
        },
    },
    "ticket": {
        "summary": "A support ticket opened",
        "value": {
            "feedback_id": "fb-1003",
            "kind": "ticket_opened",
            "occurred_at": "2026-11-21T09:00:00Z",
            "ticket_id": "T-5521",
        },
    },
}
_ACTIVITY_EXAMPLE = {
    "activity_id": "act-7f3a9c",
    "activity_type": "cart_abandoned",
    "occurred_at": "2026-11-20T14:03:00Z",
    "properties": {"cart_value": "59.90", "items": 2},
}


@router.post(
    "/{customer_id}/feedback",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReportAccepted,
    summary="Record feedback: complaint, ticket, NPS/CSAT answer, return request",
    responses=_RESPONSES,
)
async def post_feedback(
    customer_id: CustomerPath,
    feedback: Annotated[FeedbackFacts, Body(openapi_examples=_FEEDBACK_EXAMPLES)],
    session: SessionDep,
    _: WriteAccess,
) -> JSONResponse:
    """Idempotent by feedback id: a repeat answers 200 with the first event id.

    Published as `feedback.recorded` on `crm.activities` through the outbox. Scoring counts it
    in the health index's satisfaction component (never as engagement), lifecycle may raise a
    churn warning, notification may follow up.
    """
    accepted = await accept_report(session, customer_id, feedback, now=utc_now())
    body = ReportAccepted(**accepted.__dict__).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if accepted.duplicate else 202)


@router.post(
    "/{customer_id}/activities",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReportAccepted,
    summary="Record an activity: page view, email click, abandoned cart ...",
    responses=_RESPONSES,
)
async def post_activity(
    customer_id: CustomerPath,
    activity: Annotated[ActivityFacts, Body(examples=[_ACTIVITY_EXAMPLE])],
    session: SessionDep,
    _: WriteAccess,
) -> JSONResponse:
    """Idempotent by activity id: a repeat answers 200 with the first event id.

    Published as `activity.recorded` on `crm.activities` through the outbox; scoring counts it
    as engagement, notification playbooks can trigger on its type (`cart_abandoned`).
    """
    accepted = await accept_report(session, customer_id, activity, now=utc_now())
    body = ReportAccepted(**accepted.__dict__).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if accepted.duplicate else 202)
