"""Feedback in lifecycle: complaint surges and valuable detractors warn, NPS by segment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_contracts import ActivityRecorded, ValueTier
from crm_shared import Scope
from crm_shared.testing import ApiClient
from lifecycle_testing import event, feed, feedback, nps, order, scores

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


async def warnings_of(api: ApiClient, customer_id: str) -> list[dict]:
    response = await api.get("/v1/warnings", params={"customer_id": customer_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def repeat_buyer(api: ApiClient, customer_id: str, tier: ValueTier | None = None) -> None:
    """Four monthly orders of 100, the last on day 90: an active customer on day 120."""
    await feed(
        api, [order(customer_id, f"{customer_id}-o{i}", day(i * 30), "100") for i in range(4)]
    )
    await api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(120).isoformat()})
    if tier is not None:
        await feed(api, [scores(customer_id, day(120), churn_risk=0.1, tier=tier)])


async def test_a_second_complaint_within_the_window_raises_a_warning(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api, "c1")
    await feed(lifecycle_api, [feedback("c1", "fb-1", day(121))])
    assert await warnings_of(lifecycle_api, "c1") == []
    # The same complaint again (a new event, the same feedback id) is not a second one.
    await feed(lifecycle_api, [feedback("c1", "fb-1", day(121))])
    assert await warnings_of(lifecycle_api, "c1") == []

    await feed(lifecycle_api, [feedback("c1", "fb-2", day(130))])

    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["status"] == "open"
    assert warning["reasons"] == ["complaint_surge"]


async def test_complaints_further_apart_than_the_window_are_no_surge(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api, "c1")
    await feed(lifecycle_api, [feedback("c1", "fb-1", day(121))])
    await feed(lifecycle_api, [feedback("c1", "fb-2", day(152))])
    assert await warnings_of(lifecycle_api, "c1") == []


async def test_the_surge_count_and_window_are_stage_rules(lifecycle_api: ApiClient):
    rules = {"warning_complaint_surge_count": 3, "warning_complaint_window_days": 60}
    response = await lifecycle_api.put("/v1/rules", Scope.ADMIN, json={"rules": rules})
    assert response.status_code in (200, 201), response.text
    await repeat_buyer(lifecycle_api, "c1")
    await feed(lifecycle_api, [feedback("c1", "fb-1", day(121)), feedback("c1", "fb-2", day(150))])
    assert await warnings_of(lifecycle_api, "c1") == []
    await feed(lifecycle_api, [feedback("c1", "fb-3", day(170))])
    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["reasons"] == ["complaint_surge"]


async def test_a_detractor_answer_warns_a_valuable_customer_only(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api, "growth", ValueTier.GROWTH)
    await repeat_buyer(lifecycle_api, "basic", ValueTier.BASIC)
    await repeat_buyer(lifecycle_api, "passive", ValueTier.GROWTH)
    await feed(
        lifecycle_api,
        [
            nps("growth", "fb-g", day(121), 3),
            nps("basic", "fb-b", day(121), 3),
            nps("passive", "fb-p", day(121), 8),
        ],
    )

    [warning] = await warnings_of(lifecycle_api, "growth")
    assert warning["reasons"] == ["detractor_answer"]
    assert await warnings_of(lifecycle_api, "basic") == []
    assert await warnings_of(lifecycle_api, "passive") == []


async def test_a_warning_names_every_signal_and_keeps_the_feedback_ones(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api, "c1", ValueTier.GROWTH)
    await feed(lifecycle_api, [nps("c1", "fb-1", day(121), 2)])
    # A later score with a churn risk above the growth tier's threshold adds its signal ...
    await feed(lifecycle_api, [scores("c1", day(122), churn_risk=0.65, tier=ValueTier.GROWTH)])
    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["status"] == "updated"
    assert warning["reasons"] == ["churn_risk_above_threshold", "detractor_answer"]
    # ... and a sweep, which sees no feedback, keeps the detractor answer named.
    await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(125).isoformat()})
    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["reasons"] == ["churn_risk_above_threshold", "detractor_answer"]


async def test_nps_over_a_period_by_segment(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api, "g1", ValueTier.GROWTH)
    await repeat_buyer(lifecycle_api, "g2", ValueTier.GROWTH)
    await repeat_buyer(lifecycle_api, "b1", ValueTier.BASIC)
    await feed(
        lifecycle_api,
        [
            nps("g1", "a1", day(121), 10),
            nps("g2", "a2", day(122), 9),
            nps("b1", "a3", day(123), 2),
            nps("b1", "a4", day(124), 7),
            nps("g1", "a5", day(200), 0),  # outside the period asked for
            feedback("b1", "a6", day(124)),  # a complaint is no NPS answer
            feedback("b1", "a7", day(124), "survey_answer", survey="csat", score=1),
        ],
    )
    period = {"from": "2025-05-01", "to": "2025-05-31"}

    response = await lifecycle_api.get(
        "/v1/analytics/nps", params=period | {"segment_by": "value_tier"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["overall"] == {
        "answers": 4,
        "promoters": 2,
        "passives": 1,
        "detractors": 1,
        "nps": 25.0,
    }
    by_tier = {s["segment"]: (s["answers"], s["nps"]) for s in body["segments"]}
    assert by_tier == {"growth": (2, 100.0), "basic": (2, -50.0)}

    basic = await lifecycle_api.get("/v1/analytics/nps", params=period | {"value_tier": "basic"})
    assert basic.json()["overall"]["answers"] == 2
    by_stage = await lifecycle_api.get("/v1/analytics/nps", params=period | {"segment_by": "stage"})
    assert [s["segment"] for s in by_stage.json()["segments"]] == ["active"]

    counts = await lifecycle_api.get("/v1/analytics/feedback", params=period)
    assert counts.json()["counts"]["survey_answer"] == 5
    assert counts.json()["counts"]["complaint"] == 1
    assert counts.json()["counts"]["return_requested"] == 0


async def test_a_bad_nps_query_is_a_problem(lifecycle_api: ApiClient):
    response = await lifecycle_api.get("/v1/analytics/nps", params={"segment_by": "colour"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_activities_leave_lifecycle_untouched(lifecycle_api: ApiClient):
    page_view = ActivityRecorded(
        customer_id="visitor", activity_id="a-1", activity_type="page_view", occurred_at=day(1)
    )
    await feed(lifecycle_api, [event(page_view, day(1))])
    assert (await lifecycle_api.get("/v1/customers/visitor/stage")).status_code == 404
    # Nor does feedback of a customer lifecycle has not seen buy: kept for the NPS only.
    await feed(lifecycle_api, [nps("visitor", "fb-v", day(2), 1)])
    assert (await lifecycle_api.get("/v1/customers/visitor/stage")).status_code == 404
    everyone = await lifecycle_api.get(
        "/v1/analytics/nps", params={"from": "2025-01-01", "to": "2025-01-31"}
    )
    assert everyone.json()["overall"]["detractors"] == 1
