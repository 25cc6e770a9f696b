"""Scores over HTTP, fed by the same handlers the consumer runs, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from crm_contracts import (
    CloudEvent,
    CustomerErased,
    CustomerMerged,
    EventPayload,
    Money,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    ScoreUpdated,
    SegmentChanged,
    build_event,
    decode_event,
)
from crm_shared import Scope
from crm_shared.testing import ApiClient
from scoring_service.db.models import PLUMBING, Score
from scoring_service.events.handlers import ledger_batch
from scoring_service.workflows.scoring import (
    drain_pending_rescores,
    fit_once_orders_arrive,
    has_models,
    rescore_all,
    scheduled_refit,
)
from scoring_testing import app_settings, running_api

START = datetime(2025, 1, 1, tzinfo=UTC)
AS_OF = datetime(2025, 12, 31, tzinfo=UTC)


def an_order(customer: str, n: int, day: int, amount: str = "40.00") -> OrderPlaced:
    return OrderPlaced(
        order_id=f"{customer}-o{n}",
        customer_id=customer,
        placed_at=START + timedelta(days=day),
        total=Money(amount=Decimal(amount), currency="USD"),
    )


def a_base(customers: int = 60, seed: int = 7) -> list[OrderPlaced]:
    """Customers with 1-6 orders spread over the year, a reproducible mix."""
    rng = random.Random(seed)
    orders = []
    for c in range(customers):
        first = rng.randint(0, 300)
        for n in range(rng.choice([1, 1, 1, 2, 3, 6])):
            day = min(first + n * rng.randint(5, 60), 360)
            orders.append(an_order(f"c{c:03d}", n, day, f"{rng.randint(5, 200)}.00"))
    return orders


async def apply(api: ApiClient, payloads: Sequence[EventPayload]) -> None:
    """Run payloads through the consumer's batch finisher as one batch, then the re-score loop."""
    settings = api.app.state.settings
    finish = ledger_batch()
    events: list[CloudEvent] = []
    for payload in payloads:
        time = getattr(payload, "placed_at", None) or AS_OF
        events.append(build_event(payload, source="/tests", time=time))
    runtime = api.app.state.runtime
    async with runtime.sessions() as session, session.begin():
        await finish(session, events)
    await drain_pending_rescores(runtime, settings)


async def fit(api: ApiClient) -> dict:
    response = await api.post("/v1/models/fit", Scope.ADMIN, json={"as_of": AS_OF.isoformat()})
    assert response.status_code == 201, response.text
    return response.json()


async def scores(api: ApiClient, customer: str) -> dict:
    response = await api.get(f"/v1/scores/{customer}")
    assert response.status_code == 200, response.text
    return response.json()["scores"]


async def outbox_size(api: ApiClient) -> int:
    async with api.app.state.runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(PLUMBING.outbox)) or 0)


async def test_reading_needs_a_key_and_fitting_needs_admin(scoring_api: ApiClient) -> None:
    assert (await scoring_api.client.get("/v1/scores")).status_code == 401
    forbidden = await scoring_api.post("/v1/models/fit", Scope.WRITE, json={})
    assert forbidden.status_code == 403
    missing = await scoring_api.get("/v1/scores/nobody")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_a_fitted_base_gets_complete_scores_and_segments(scoring_api: ApiClient) -> None:
    await apply(scoring_api, a_base())
    model = await fit(scoring_api)
    assert model["customers"] == 60
    assert set(model["bg_nbd"]) >= {"r", "alpha", "a", "b", "log_likelihood"}
    listed = (await scoring_api.get("/v1/models")).json()
    assert [m["version"] for m in listed] == [model["version"]]
    one = (await scoring_api.get(f"/v1/models/{model['version']}")).json()
    assert "rfm" in one["thresholds"]

    s = await scores(scoring_api, "c000")
    assert 1 <= s["recency_score"] <= 5
    assert 0 <= s["churn_risk"] <= 1
    assert 0 <= s["health_index"] <= 100
    assert s["value_tier"] in {"strategic_partner", "growth", "profit", "basic"}
    explanation = (await scoring_api.get("/v1/scores/c000")).json()["explanation"]
    contributions = sum(c["points"] for c in explanation["health"])
    assert round(contributions, 1) == round(s["health_index"], 1)

    overview = (await scoring_api.get("/v1/segments")).json()
    assert sum(seg["customers"] for seg in overview["rfm_segments"]) == 60
    await assert_segment_revenue_is_the_summed_spend(scoring_api, overview["rfm_segments"])
    assert sum(c["customers"] for c in overview["clusters"]) == 60
    risky = await scoring_api.get("/v1/scores", params={"churn_risk_min": 0.5, "limit": 500})
    assert all(item["scores"]["churn_risk"] >= 0.5 for item in risky.json()["items"])


async def assert_segment_revenue_is_the_summed_spend(
    scoring_api: ApiClient, segments: list[dict[str, Any]]
) -> None:
    """Each RFM segment's revenue is its customers' total spend added up, in one currency."""
    for segment in segments:
        listed = await scoring_api.get(
            "/v1/scores", params={"segment": segment["name"], "limit": 500}
        )
        spend = sum(
            Decimal(item["scores"]["total_spend"]["amount"]) for item in listed.json()["items"]
        )
        (revenue,) = segment["revenue"]
        assert revenue["currency"] == "USD"
        assert spend > 0
        assert Decimal(revenue["amount"]) == spend


async def test_refunds_lower_spend_and_cancellations_take_orders_out(
    scoring_api: ApiClient,
) -> None:
    await apply(scoring_api, [*a_base(), an_order("buyer", 1, 10, "100.00")])
    await apply(scoring_api, [an_order("buyer", 2, 50, "60.00")])
    await fit(scoring_api)
    assert (await scores(scoring_api, "buyer"))["total_spend"]["amount"] == "160.00"

    refund = OrderRefunded(
        order_id="buyer-o1",
        refund_id="r1",
        customer_id="buyer",
        refunded_at=AS_OF,
        amount=Money(amount=Decimal("30.00"), currency="USD"),
    )
    await apply(scoring_api, [refund, refund])
    assert (await scores(scoring_api, "buyer"))["total_spend"]["amount"] == "130.00"

    cancel = OrderCancelled(order_id="buyer-o2", customer_id="buyer", cancelled_at=AS_OF)
    await apply(scoring_api, [cancel])
    after = await scores(scoring_api, "buyer")
    assert (after["order_count"], after["total_spend"]["amount"]) == (1, "70.00")


async def test_merge_folds_purchases_and_erasure_forgets(scoring_api: ApiClient) -> None:
    await apply(scoring_api, [*a_base(), an_order("left", 1, 20), an_order("right", 1, 40)])
    await fit(scoring_api)
    merged = CustomerMerged(customer_id="left", merged_customer_id="right", merged_at=AS_OF)
    await apply(scoring_api, [merged])
    assert (await scores(scoring_api, "left"))["order_count"] == 2
    assert (await scoring_api.get("/v1/scores/right")).status_code == 404

    await apply(scoring_api, [CustomerErased(customer_id="left", erased_at=AS_OF)])
    assert (await scoring_api.get("/v1/scores/left")).status_code == 404


async def test_a_rescore_that_changes_nothing_publishes_nothing(scoring_api: ApiClient) -> None:
    await apply(scoring_api, a_base())
    await fit(scoring_api)
    published = await outbox_size(scoring_api)
    assert published >= 60
    runtime, settings = scoring_api.app.state.runtime, scoring_api.app.state.settings
    assert await rescore_all(runtime, settings, as_of=AS_OF) == 0
    assert await outbox_size(scoring_api) == published
    # A month of silence later, risk has moved for someone, and some segment with it.
    assert await rescore_all(runtime, settings, as_of=AS_OF + timedelta(days=30)) > 0
    async with runtime.sessions() as session:
        payloads = (await session.scalars(select(PLUMBING.outbox.c.payload))).all()
    changes = [decode_event(p).data for p in payloads if '"segment.changed"' in p]
    assert changes, "silence should move someone's RFM segment"
    assert all(isinstance(c, SegmentChanged) and c.previous is not None for c in changes)


async def test_each_published_score_is_the_stored_one(scoring_api: ApiClient) -> None:
    # The row and the event share one serialisation (COPY on PostgreSQL): they must agree.
    await apply(scoring_api, a_base())
    await fit(scoring_api)
    runtime = scoring_api.app.state.runtime
    async with runtime.sessions() as session:
        payloads = (await session.scalars(select(PLUMBING.outbox.c.payload))).all()
        stored = dict((await session.execute(select(Score.customer_id, Score.payload))).all())
    published = [decode_event(p).data for p in payloads if '"score.updated"' in p]
    assert len(published) == len(stored) >= 60
    for event in published:
        assert isinstance(event, ScoreUpdated)
        assert event.model_dump(mode="json") == stored[event.customer_id]


async def test_a_base_too_small_to_fit_says_so_and_publishes_no_nan(
    scoring_api: ApiClient,
) -> None:
    await apply(scoring_api, [an_order("a", 1, 1), an_order("b", 1, 2), an_order("b", 2, 9)])
    model = await fit(scoring_api)
    assert any("not fitted" in note for note in model["notes"])
    s = await scores(scoring_api, "b")
    assert s["churn_risk"] is None
    assert s["predicted_clv_12m"] is None
    assert 1 <= s["frequency_score"] <= 5


async def test_fitting_an_empty_base_is_refused_clearly(scoring_api: ApiClient) -> None:
    response = await scoring_api.post("/v1/models/fit", Scope.ADMIN, json={})
    assert response.status_code == 422
    assert "nothing to fit" in response.json()["detail"]


async def test_a_new_base_gets_its_first_model_once_orders_arrive(scoring_api: ApiClient) -> None:
    runtime, settings = scoring_api.app.state.runtime, scoring_api.app.state.settings
    waiting = asyncio.create_task(
        fit_once_orders_arrive(runtime, settings, lambda: AS_OF, every_seconds=0.05)
    )
    try:
        await asyncio.sleep(0.3)  # several attempts on an empty base: nothing to fit yet
        assert not await has_models(runtime)
        await apply(scoring_api, a_base())
        await asyncio.wait_for(waiting, 30)
        assert (await scoring_api.get("/v1/models")).json()[0]["customers"] == 60
    finally:
        waiting.cancel()


async def wait_for_versions(api: ApiClient, done: Callable[[list[dict]], bool]) -> list[dict]:
    """Poll the versions list until `done` holds (the service's own loop fits meanwhile)."""
    for _ in range(600):
        versions = (await api.get("/v1/models")).json()
        if done(versions):
            return versions
        await asyncio.sleep(0.05)
    raise AssertionError(f"the versions never got there: {versions}")


async def test_a_first_model_without_bg_nbd_is_refitted_until_it_has_one(
    database_url: str,
) -> None:
    # The service's own schedule and clock: the first-fit loop the app starts, on utc_now.
    settings = app_settings(
        database_url,
        refit_interval_seconds=86_400,
        first_fit_retry_seconds=0.05,
        first_fit_retry_max_seconds=0.2,
    )
    async with running_api(settings) as api:
        await apply(api, [an_order("solo", 1, 1), an_order("solo", 2, 30)])
        first = await wait_for_versions(api, lambda versions: len(versions) >= 1)
        assert first[-1]["bg_nbd"] == {}
        assert any("need 20" in note for note in first[-1]["notes"])
        assert (await scores(api, "solo"))["churn_risk"] is None
        # The loop keeps trying (backing off) and fits BG/NBD once the base has grown.
        await apply(api, a_base())
        versions = await wait_for_versions(api, lambda versions: bool(versions[0]["bg_nbd"]))
        assert len(versions) >= 2
        assert versions[0]["customers"] == 61
        assert (await scores(api, "solo"))["churn_risk"] is not None
        assert (await scores(api, "c000"))["churn_risk"] is not None


def free_repeat_orders(customer: str) -> list[EventPayload]:
    """A paid first order, then repeat orders that are free, refunded in full or cancelled."""
    refund = OrderRefunded(
        order_id=f"{customer}-o2",
        refund_id="r1",
        customer_id=customer,
        refunded_at=START + timedelta(days=60),
        amount=Money(amount=Decimal("35.00"), currency="USD"),
    )
    cancel = OrderCancelled(
        order_id=f"{customer}-o4", customer_id=customer, cancelled_at=START + timedelta(days=95)
    )
    return [
        an_order(customer, 1, 10, "25.00"),
        an_order(customer, 2, 40, "35.00"),
        refund,
        an_order(customer, 3, 70, "0.00"),
        an_order(customer, 4, 90, "80.00"),
        cancel,
        an_order(customer, 5, 120, "0.00"),
    ]


async def test_a_customer_whose_repeat_orders_were_all_free_is_left_out_of_the_spend_model(
    scoring_api: ApiClient,
) -> None:
    await apply(scoring_api, [*a_base(), *free_repeat_orders("freebie")])

    model = await fit(scoring_api)

    assert model["customers"] == 61
    assert model["gamma_gamma"], model["notes"]
    assert any("1 repeat buyers left out" in note for note in model["notes"]), model["notes"]
    s = await scores(scoring_api, "freebie")
    assert s["order_count"] == 3  # the refunded and the cancelled order are gone
    assert s["total_spend"]["amount"] == "25.00"
    assert Decimal(s["predicted_clv_12m"]["amount"]) > 0


async def test_the_scheduled_refit_succeeds_with_free_repeat_buyers_in_the_base(
    scoring_api: ApiClient,
) -> None:
    runtime, settings = scoring_api.app.state.runtime, scoring_api.app.state.settings
    free = [order for c in range(3) for order in free_repeat_orders(f"free{c}")]
    await apply(scoring_api, [*a_base(), *free])

    await scheduled_refit(runtime, settings, lambda: AS_OF)
    await scheduled_refit(runtime, settings, lambda: AS_OF + timedelta(days=7))

    versions = (await scoring_api.get("/v1/models")).json()
    assert len(versions) == 2
    assert all(any("3 repeat buyers left out" in n for n in v["notes"]) for v in versions)
    assert (await scores(scoring_api, "free0"))["predicted_clv_12m"] is not None


async def test_a_total_spend_past_one_orders_bound_is_published_in_full(
    scoring_api: ApiClient,
) -> None:
    big = [an_order("whale", n, 30 * n, "900000000000.00") for n in range(1, 4)]
    await apply(scoring_api, [*a_base(), *big])

    await fit(scoring_api)

    s = await scores(scoring_api, "whale")
    assert s["order_count"] == 3
    # Each order stays below a trillion; their sum may pass it (aggregates go to a quadrillion).
    assert s["total_spend"]["amount"] == "2700000000000.00"
    assert s["average_order_value"]["amount"] == "900000000000.00"
