"""A customer who objects to profiling (GDPR art. 21/22) is never warned; withdrawing resumes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from test_warnings import published_warnings, repeat_buyer, warnings_of

from crm_contracts import (
    Channel,
    CloudEvent,
    ConsentChanged,
    ConsentState,
    Purpose,
    ValueTier,
)
from crm_shared import Scope
from crm_shared.testing import ApiClient
from lifecycle_testing import event, feed, order, scores

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def profiling(customer_id: str, at: datetime, *, objects: bool) -> CloudEvent:
    """The ``consent.changed`` profile-service publishes for a profiling decision."""
    decision = ConsentState(
        channel=Channel.EMAIL,
        purpose=Purpose.PROFILING,
        granted=not objects,
        source="account_settings",
        changed_at=at,
    )
    return event(ConsentChanged(customer_id=customer_id, consent=decision), at)


def high_risk(customer_id: str, at: datetime) -> CloudEvent:
    return scores(customer_id, at, churn_risk=0.9, tier=ValueTier.GROWTH, rhythm_days=30)


async def test_an_objection_withdraws_the_open_warning_with_its_reason(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api)
    await feed(lifecycle_api, [high_risk("c1", day(121))])
    [opened] = await warnings_of(lifecycle_api, "c1")
    assert opened["status"] == "open"

    await feed(lifecycle_api, [profiling("c1", day(122), objects=True)])

    [withdrawn] = await warnings_of(lifecycle_api, "c1")
    assert withdrawn["warning_id"] == opened["warning_id"]
    assert withdrawn["status"] == "withdrawn"
    assert withdrawn["reasons"] == ["profiling_objection"]
    assert [w["status"] for w in await published_warnings(lifecycle_api)] == ["open", "withdrawn"]
    stage = (await lifecycle_api.get("/v1/customers/c1/stage")).json()
    assert stage["open_warning"] is None
    outcomes = (await lifecycle_api.get("/v1/analytics/warnings")).json()["total"]
    assert (outcomes["open"], outcomes["saved"], outcomes["lost"]) == (0, 0, 0)
    assert stage["churn_risk"] is None  # the scores are forgotten
    assert stage["value_tier"] is None


async def test_an_objecting_customer_is_not_warned_but_orders_still_move_the_stage(
    lifecycle_api: ApiClient,
):
    await feed(lifecycle_api, [profiling("c1", day(0), objects=True)])
    await repeat_buyer(lifecycle_api)
    # Scores in flight when the objection was made, a falling spend, then a long silence.
    await feed(
        lifecycle_api,
        [high_risk("c1", day(121)), order("c1", "c1-small", day(125), "10")],
    )
    await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(200).isoformat()})

    assert await warnings_of(lifecycle_api, "c1") == []
    assert await published_warnings(lifecycle_api) == []
    stage = (await lifecycle_api.get("/v1/customers/c1/stage")).json()
    assert stage["order_count"] == 5
    assert stage["churn_risk"] is None


async def test_withdrawing_the_objection_warns_again_on_the_next_scores(lifecycle_api: ApiClient):
    await feed(lifecycle_api, [profiling("c1", day(0), objects=True)])
    await repeat_buyer(lifecycle_api)
    await feed(lifecycle_api, [high_risk("c1", day(121))])
    assert await warnings_of(lifecycle_api, "c1") == []

    await feed(lifecycle_api, [profiling("c1", day(122), objects=False)])
    await feed(lifecycle_api, [high_risk("c1", day(123))])

    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["status"] == "open"
    assert warning["reasons"] == ["churn_risk_above_threshold"]


async def test_an_older_objection_arriving_late_does_not_undo_a_withdrawal(
    lifecycle_api: ApiClient,
):
    await repeat_buyer(lifecycle_api)
    await feed(lifecycle_api, [profiling("c1", day(122), objects=False)])
    await feed(lifecycle_api, [profiling("c1", day(100), objects=True)])
    await feed(lifecycle_api, [high_risk("c1", day(123))])

    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["status"] == "open"
