"""Churn warnings: raised by scores, spend and silence; one open per customer; saved or lost."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from crm_contracts import Grade, ValueTier
from crm_shared import Scope
from crm_shared.testing import ApiClient
from lifecycle_service.db.models import PLUMBING
from lifecycle_testing import feed, order, scores

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


async def warnings_of(api: ApiClient, customer_id: str) -> list[dict]:
    response = await api.get("/v1/warnings", params={"customer_id": customer_id})
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def published_warnings(api: ApiClient) -> list[dict]:
    async with api.app.state.runtime.sessions() as session:
        payloads = await session.scalars(
            select(PLUMBING.outbox.c.payload).order_by(PLUMBING.outbox.c.id)
        )
        events = [json.loads(payload) for payload in payloads]
    return [e["data"] for e in events if e["type"] == "churn.warning"]


async def repeat_buyer(api: ApiClient, customer_id: str = "c1") -> None:
    """Four monthly orders of 100, the last on day 90: an active customer on day 120."""
    await feed(
        api, [order(customer_id, f"{customer_id}-o{i}", day(i * 30), "100") for i in range(4)]
    )
    await api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(120).isoformat()})


async def test_a_churn_risk_above_the_tier_threshold_raises_one_warning(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api)
    high_risk = scores(
        "c1", day(121), churn_risk=0.65, tier=ValueTier.GROWTH, rhythm_days=30, clv="240.50"
    )
    await feed(lifecycle_api, [high_risk])
    # The same signals again (a redelivery or the next score) change nothing.
    await feed(
        lifecycle_api,
        [scores("c1", day(122), churn_risk=0.66, tier=ValueTier.GROWTH, rhythm_days=30)],
    )

    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["status"] == "open"
    assert warning["reasons"] == ["churn_risk_above_threshold"]
    assert warning["recommended_action"] == "retention_offer"
    [published] = await published_warnings(lifecycle_api)
    assert published["value_tier"] == "growth"
    assert published["predicted_clv_12m"] == {"amount": "240.50", "currency": "USD"}


async def test_the_threshold_differs_by_tier(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api, "partner")
    await repeat_buyer(lifecycle_api, "basic")
    await feed(
        lifecycle_api,
        [
            scores("partner", day(121), churn_risk=0.55, tier=ValueTier.STRATEGIC_PARTNER),
            scores("basic", day(121), churn_risk=0.55, tier=ValueTier.BASIC),
        ],
    )

    [warning] = await warnings_of(lifecycle_api, "partner")
    assert warning["recommended_action"] == "account_manager_task"
    assert await warnings_of(lifecycle_api, "basic") == []


async def test_new_signals_update_the_open_warning_instead_of_raising_another(
    lifecycle_api: ApiClient,
):
    await repeat_buyer(lifecycle_api)
    await feed(lifecycle_api, [scores("c1", day(121), churn_risk=0.8, rhythm_days=30)])
    # Silence past 1.5x the 30-day rhythm at day 136: the same warning gains a reason.
    await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(140).isoformat()})

    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["status"] == "updated"
    assert warning["reasons"] == ["churn_risk_above_threshold", "silence_past_rhythm"]
    assert [w["status"] for w in await published_warnings(lifecycle_api)] == ["open", "updated"]


async def test_a_purchase_closes_the_warning_as_saved(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api)
    await feed(lifecycle_api, [scores("c1", day(121), churn_risk=0.8)])
    await feed(lifecycle_api, [order("c1", "again", day(130), "100")])

    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["status"] == "saved"
    assert warning["changed_at"] == "2025-05-11T00:00:00Z"
    stage = (await lifecycle_api.get("/v1/customers/c1/stage")).json()
    assert stage["open_warning"] is None


async def test_a_warning_nobody_answers_expires_as_lost(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api)
    await feed(lifecycle_api, [scores("c1", day(121), churn_risk=0.8)])

    swept = await lifecycle_api.post(
        "/v1/sweeps", Scope.ADMIN, json={"as_of": day(260).isoformat()}
    )

    # The same signals persist, but a warning lost to them is not raised again.
    assert (swept.json()["warnings_closed"], swept.json()["warnings_raised"]) == (1, 0)
    [warning] = await warnings_of(lifecycle_api, "c1")
    # Recorded at the expiry moment (90 days after raising), not at the sweep that saw it.
    assert (warning["status"], warning["changed_at"]) == ("lost", "2025-07-31T00:00:00Z")


async def test_a_sharp_drop_in_spend_raises_a_warning(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api)
    await feed(lifecycle_api, [order("c1", "small", day(125), "40")])

    [warning] = await warnings_of(lifecycle_api, "c1")
    assert warning["reasons"] == ["spend_dropped"]


async def test_new_customers_are_not_warned(lifecycle_api: ApiClient):
    await feed(lifecycle_api, [order("c1", "o1", day(0))])
    await feed(lifecycle_api, [scores("c1", day(1), churn_risk=0.95, tier=ValueTier.BASIC)])

    assert await warnings_of(lifecycle_api, "c1") == []


async def test_the_warning_list_filters_and_pages(lifecycle_api: ApiClient):
    for n in range(5):
        await repeat_buyer(lifecycle_api, f"c{n}")
    tiers = [ValueTier.GROWTH, ValueTier.GROWTH, ValueTier.BASIC, ValueTier.BASIC, ValueTier.BASIC]
    await feed(
        lifecycle_api,
        [
            scores(f"c{n}", day(121 + n), churn_risk=0.9, tier=tier, grade=Grade.LOW)
            for n, tier in enumerate(tiers)
        ],
    )

    growth = await lifecycle_api.get("/v1/warnings", params={"tier": "growth", "status": "open"})
    assert [w["customer_id"] for w in growth.json()["items"]] == ["c1", "c0"]
    first = (await lifecycle_api.get("/v1/warnings", params={"limit": 3})).json()
    rest = (
        await lifecycle_api.get("/v1/warnings", params={"limit": 3, "cursor": first["next_cursor"]})
    ).json()
    assert [w["customer_id"] for w in first["items"] + rest["items"]] == [
        "c4",
        "c3",
        "c2",
        "c1",
        "c0",
    ]
    assert rest["next_cursor"] is None
    bad = await lifecycle_api.get("/v1/warnings", params={"status": "maybe"})
    assert bad.status_code == 422


async def test_warning_times_without_an_offset_are_taken_as_utc(lifecycle_api: ApiClient):
    await repeat_buyer(lifecycle_api)
    await feed(lifecycle_api, [scores("c1", day(121), churn_risk=0.8)])

    response = await lifecycle_api.get("/v1/warnings", params={"raised_from": "2025-05-01"})

    assert response.status_code == 200, response.text
    assert [w["customer_id"] for w in response.json()["items"]] == ["c1"]


async def test_open_warnings_at_risk_list_the_largest_value_at_risk_first(
    lifecycle_api: ApiClient,
):
    for customer_id, clv in (("small", "100.00"), ("large", "900.00")):
        await repeat_buyer(lifecycle_api, customer_id)
        await feed(
            lifecycle_api,
            [
                scores(
                    customer_id,
                    day(121),
                    churn_risk=0.65,
                    tier=ValueTier.GROWTH,
                    rhythm_days=30,
                    clv=clv,
                )
            ],
        )

    response = await lifecycle_api.get("/v1/warnings/at-risk", params={"limit": 500})
    assert response.status_code == 200, response.text
    mine = [w for w in response.json() if w["customer_id"] in {"small", "large"}]
    assert [w["customer_id"] for w in mine] == ["large", "small"]
    assert mine[0]["clv_at_risk_12m"] == 900.0 * 0.65
    assert mine[0]["stage"] is not None
    assert (
        await lifecycle_api.get("/v1/warnings/at-risk", params={"limit": 501})
    ).status_code == 422
