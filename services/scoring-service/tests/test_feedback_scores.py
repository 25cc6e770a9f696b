"""Feedback in the scores: the satisfaction component moves, complaints never count as
engagement, a report sent twice counts once; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from test_scores_api import AS_OF, a_base, apply, fit

from crm_contracts import ActivityRecorded, FeedbackRecorded
from crm_shared.testing import ApiClient
from scoring_service.workflows.feedback_loading import feedback_inputs


def feedback(feedback_id: str, kind: str, days_before: int = 1, **facts: Any) -> FeedbackRecorded:
    return FeedbackRecorded(
        customer_id="c000",
        feedback_id=feedback_id,
        kind=kind,
        occurred_at=AS_OF - timedelta(days=days_before),
        **facts,
    )


def an_activity(activity_id: str, activity_type: str) -> ActivityRecorded:
    return ActivityRecorded(
        customer_id="c000",
        activity_id=activity_id,
        activity_type=activity_type,
        occurred_at=AS_OF - timedelta(days=2),
    )


async def health_of(api: ApiClient, customer: str) -> tuple[float, dict[str, dict[str, Any]]]:
    body = (await api.get(f"/v1/scores/{customer}")).json()
    entries = {entry["component"]: entry for entry in body["explanation"]["health"]}
    return body["scores"]["health_index"], entries


async def test_complaints_and_a_detractor_answer_lower_health_and_never_engagement(
    scoring_api: ApiClient,
) -> None:
    await apply(scoring_api, a_base())
    await fit(scoring_api)
    await apply(scoring_api, [an_activity("a-view", "page_view")])
    health_before, before = await health_of(scoring_api, "c000")
    assert before["satisfaction"]["sub_score"] == 0.5
    assert "no survey answer" in before["satisfaction"]["reason"]

    reports = [
        an_activity("a-complaint", "complaint"),  # feedback sent as a plain activity
        feedback("fb-1", "complaint", about="late_delivery"),
        feedback("fb-2", "complaint", days_before=100),  # outside the 90 days
        feedback("fb-3", "complaint"),
        feedback("fb-4", "survey_answer", survey="nps", score=2),
        feedback("fb-5", "ticket_opened", ticket_id="T-1"),
        feedback("fb-6", "ticket_opened", ticket_id="T-2"),
        feedback("fb-7", "ticket_resolved", ticket_id="T-2"),
    ]
    await apply(scoring_api, reports)
    await apply(scoring_api, [feedback("fb-1", "complaint", about="late_delivery")])  # again
    health_after, after = await health_of(scoring_api, "c000")

    satisfaction = after["satisfaction"]
    assert satisfaction["value"] == 2.0
    reason = satisfaction["reason"]
    assert "NPS answer 2 of 10 (detractor)" in reason
    assert "2 complaint(s) in the last 90 days" in reason
    assert "1 support ticket(s) unresolved" in reason
    # 0.2 - 2 complaints x 0.2 - 1 ticket x 0.1, floored at 0.
    assert satisfaction["sub_score"] == 0.0
    # The page view counts; the complaint sent as an activity does not.
    assert after["engagement"]["value"] == 1.0
    assert health_after < health_before
    assert round(sum(entry["points"] for entry in after.values()), 1) == round(health_after, 1)


async def test_a_promoter_without_complaints_gains_satisfaction(scoring_api: ApiClient) -> None:
    await apply(scoring_api, a_base())
    await fit(scoring_api)
    _, before = await health_of(scoring_api, "c000")
    await apply(
        scoring_api,
        [
            feedback("fb-nps", "survey_answer", survey="nps", score=10),
            feedback("fb-csat", "survey_answer", survey="csat", score=8),
        ],
    )
    _, after = await health_of(scoring_api, "c000")
    assert after["satisfaction"]["sub_score"] == 0.9  # (10 + 8) / 2 / 10
    assert after["satisfaction"]["points"] > before["satisfaction"]["points"]
    assert "last CSAT answer 8 of 10" in after["satisfaction"]["reason"]


async def test_feedback_inputs_read_by_ids_or_in_one_pass_agree(scoring_api: ApiClient) -> None:
    reports = [
        feedback("fb-1", "complaint"),
        feedback("fb-2", "survey_answer", survey="csat", score=6),
        feedback("fb-3", "survey_answer", survey="csat", score=9, days_before=0),
        feedback("fb-4", "survey_answer", survey="nps", score=8, days_before=400),  # too old
        feedback("fb-5", "ticket_opened", ticket_id="T-9"),
        FeedbackRecorded(
            customer_id="c001", feedback_id="fb-6", kind="complaint", occurred_at=AS_OF
        ),
        FeedbackRecorded(  # after as_of: not yet known
            customer_id="c001",
            feedback_id="fb-7",
            kind="complaint",
            occurred_at=AS_OF + timedelta(days=1),
        ),
    ]
    await apply(scoring_api, reports)
    customers = ["c001", "c000", "nobody"]
    async with scoring_api.app.state.runtime.sessions() as session:
        by_ids = await feedback_inputs(session, customers, AS_OF)
        one_pass = await feedback_inputs(session, customers, AS_OF, whole_base=0)

    for name in by_ids:
        assert np.array_equal(by_ids[name], one_pass[name], equal_nan=True), name
    assert by_ids["complaints_90d"].tolist() == [1.0, 1.0, 0.0]
    assert by_ids["latest_csat"][1] == 9.0
    assert np.isnan(by_ids["latest_nps"]).all()
    assert by_ids["unresolved_tickets"].tolist() == [0.0, 1.0, 0.0]
