"""Orders, scores and customer events move stored customers, with history and counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from crm_contracts import (
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerSnapshot,
    Grade,
    OrderCancelled,
    ValueTier,
)
from crm_shared import Scope
from crm_shared.testing import ApiClient
from lifecycle_service.db.models import PLUMBING, LifecycleOrder, StageTransition
from lifecycle_testing import event, feed, order, scores

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def valued_buyer_scores(at: datetime, churn_risk: float):
    """Scores of c1, a profit-tier, high-grade buyer of 4 orders a month apart."""
    return scores(
        "c1",
        at,
        churn_risk=churn_risk,
        tier=ValueTier.PROFIT,
        grade=Grade.HIGH,
        rhythm_days=30,
        orders=4,
    )


async def stage_of(api: ApiClient, customer_id: str) -> dict:
    response = await api.get(f"/v1/customers/{customer_id}/stage")
    assert response.status_code == 200, response.text
    return response.json()


async def outbox_types(api: ApiClient) -> list[str]:
    async with api.app.state.runtime.sessions() as session:
        payloads = await session.scalars(select(PLUMBING.outbox.c.payload))
        return [payload.split('"type":"')[1].split('"')[0] for payload in payloads]


async def test_a_first_order_makes_a_new_customer_with_one_transition(lifecycle_api: ApiClient):
    await feed(lifecycle_api, [order("c1", "o1", day(0))])

    view = await stage_of(lifecycle_api, "c1")
    assert view["stage"] == "new"
    assert [(h["previous_stage"], h["stage"]) for h in view["history"]] == [(None, "new")]
    assert view["history"][0]["reason"] == "first purchase"
    assert view["next_review_at"] == "2025-04-01T00:00:00Z"  # the end of the 90-day new window
    assert await outbox_types(lifecycle_api) == ["lifecycle.stage_changed"]


async def test_a_known_customer_starts_as_prospect(lifecycle_api: ApiClient):
    snapshot = CustomerSnapshot(customer_id="c1", created_at=day(0), updated_at=day(0))
    await feed(lifecycle_api, [event(CustomerCreated(customer=snapshot), day(0))])
    await feed(lifecycle_api, [order("c1", "o1", day(3))])

    view = await stage_of(lifecycle_api, "c1")
    assert [(h["previous_stage"], h["stage"]) for h in view["history"]] == [
        (None, "prospect"),
        ("prospect", "new"),
    ]


async def test_silence_moves_a_one_time_buyer_through_the_fall_backs(lifecycle_api: ApiClient):
    await feed(lifecycle_api, [order("c1", "o1", day(0))])

    for at, expected in ((day(95), "at_risk"), (day(200), "dormant"), (day(320), "churned")):
        swept = await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": at.isoformat()})
        assert swept.status_code == 201, swept.text
        assert (await stage_of(lifecycle_api, "c1"))["stage"] == expected

    view = await stage_of(lifecycle_api, "c1")
    assert [h["stage"] for h in view["history"]] == ["new", "at_risk", "dormant", "churned"]
    assert {h["cause"] for h in view["history"][1:]} == {"sweep"}
    assert view["next_review_at"] is None


async def test_a_sweep_run_twice_at_the_same_moment_changes_nothing_the_second_time(
    lifecycle_api: ApiClient,
):
    await feed(lifecycle_api, [order(f"c{i}", f"o{i}", day(-i * 40)) for i in range(8)])
    at = {"as_of": day(30).isoformat()}

    first = (await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json=at)).json()
    events_after_first = await outbox_types(lifecycle_api)
    second = (await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json=at)).json()

    assert first["moved"] > 0
    assert (second["reviewed"], second["moved"], second["warnings_raised"]) == (0, 0, 0)
    assert await outbox_types(lifecycle_api) == events_after_first


async def test_a_purchase_after_decline_wins_the_customer_back_then_settles(
    lifecycle_api: ApiClient,
):
    await feed(lifecycle_api, [order("c1", "o1", day(0))])
    await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(200).isoformat()})
    await feed(lifecycle_api, [order("c1", "o2", day(210))])
    assert (await stage_of(lifecycle_api, "c1"))["stage"] == "won_back"

    await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(275).isoformat()})

    assert [h["stage"] for h in (await stage_of(lifecycle_api, "c1"))["history"]] == [
        "new",
        "dormant",
        "won_back",
        "active",
    ]


async def test_scores_make_a_valuable_steady_buyer_loyal_and_high_risk_at_risk(
    lifecycle_api: ApiClient,
):
    await feed(lifecycle_api, [order("c1", f"o{i}", day(i * 30)) for i in range(4)])
    await feed(lifecycle_api, [valued_buyer_scores(day(100), churn_risk=0.2)])
    assert (await stage_of(lifecycle_api, "c1"))["stage"] == "loyal"

    # 0.4 is above loyal entry (0.3) but below its exit (0.45): still loyal (hysteresis).
    await feed(lifecycle_api, [valued_buyer_scores(day(101), churn_risk=0.4)])
    assert (await stage_of(lifecycle_api, "c1"))["stage"] == "loyal"

    await feed(lifecycle_api, [valued_buyer_scores(day(102), churn_risk=0.8)])
    view = await stage_of(lifecycle_api, "c1")
    assert view["stage"] == "at_risk"
    assert view["history"][-1]["reason"].startswith("churn risk 0.80")


async def test_a_redelivered_order_id_counts_once(lifecycle_api: ApiClient):
    await feed(lifecycle_api, [order("c1", "o1", day(0)), order("c1", "o1", day(0))])
    await feed(lifecycle_api, [order("c1", "o1", day(0))])

    view = await stage_of(lifecycle_api, "c1")
    assert view["order_count"] == 1


async def test_cancelling_the_only_order_makes_the_customer_a_prospect_again(
    lifecycle_api: ApiClient,
):
    await feed(lifecycle_api, [order("c1", "o1", day(0)), order("c1", "o2", day(10))])
    cancel = OrderCancelled(order_id="o2", customer_id="c1", cancelled_at=day(11))
    await feed(lifecycle_api, [event(cancel, day(11))])
    assert (await stage_of(lifecycle_api, "c1"))["order_count"] == 1

    cancel_first = OrderCancelled(order_id="o1", customer_id="c1", cancelled_at=day(12))
    await feed(lifecycle_api, [event(cancel_first, day(12))])

    view = await stage_of(lifecycle_api, "c1")
    assert (view["stage"], view["order_count"]) == ("prospect", 0)


async def test_a_cancellation_before_its_order_keeps_the_order_out(lifecycle_api: ApiClient):
    cancel = OrderCancelled(order_id="o1", customer_id="c1", cancelled_at=day(1))
    await feed(lifecycle_api, [event(cancel, day(1)), order("c1", "o1", day(0))])

    assert (await lifecycle_api.get("/v1/customers/c1/stage")).status_code == 404


async def test_a_merge_folds_purchases_and_history_into_the_survivor(lifecycle_api: ApiClient):
    await feed(lifecycle_api, [order("a", "o1", day(0)), order("b", "o2", day(100))])
    merge = CustomerMerged(customer_id="a", merged_customer_id="b", merged_at=day(101))
    await feed(lifecycle_api, [event(merge, day(101))])

    survivor = await stage_of(lifecycle_api, "a")
    assert survivor["order_count"] == 2
    assert survivor["stage"] == "active"
    assert (await lifecycle_api.get("/v1/customers/b/stage")).status_code == 404
    async with lifecycle_api.app.state.runtime.sessions() as session:
        owners = set(await session.scalars(select(StageTransition.customer_id)))
    assert owners == {"a"}


async def test_an_erased_customer_leaves_nothing_behind(lifecycle_api: ApiClient):
    await feed(lifecycle_api, [order("c1", "o1", day(0)), order("c1", "o2", day(5))])
    await feed(lifecycle_api, [event(CustomerErased(customer_id="c1", erased_at=day(6)), day(6))])

    assert (await lifecycle_api.get("/v1/customers/c1/stage")).status_code == 404
    async with lifecycle_api.app.state.runtime.sessions() as session:
        for model in (LifecycleOrder, StageTransition):
            assert await session.scalar(select(func.count()).select_from(model)) == 0
