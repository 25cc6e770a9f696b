"""Retention analytics answer from the stored counts: stages, moves, cohorts, rates, warnings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm_contracts import CustomerCreated, CustomerSnapshot, Grade, OrderCancelled, ValueTier
from crm_shared import Scope
from crm_shared.testing import ApiClient
from lifecycle_testing import event, feed, order, scores

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def date_of(n: int) -> str:
    return day(n).date().isoformat()


async def analytics(api: ApiClient, path: str, **params: str) -> dict:
    response = await api.get(f"/v1/analytics/{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def sweep(api: ApiClient, n: float) -> None:
    swept = await api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(n).isoformat()})
    assert swept.status_code == 201, swept.text


async def known(api: ApiClient, customer_id: str, n: float) -> None:
    """``customer_id`` becomes known on day ``n`` without buying: a prospect."""
    snapshot = CustomerSnapshot(customer_id=customer_id, created_at=day(n), updated_at=day(n))
    await feed(api, [event(CustomerCreated(customer=snapshot), day(n))])


async def a_year_of_a_small_shop(api: ApiClient) -> None:
    """Four one- or two-order buyers, a prospect, and sweeps that let silence do its work.

    Stages (fixed fall-backs: at_risk from 91 silent days, dormant 181, churned 301):
    a: buys day 0; at_risk day 95, dormant day 200, churned day 320.
    b: buys days 0 and 40; active day 95, at_risk day 200, dormant day 320.
    c: buys day 35; new until at_risk day 200, dormant day 320.
    d: known day 10, never buys: prospect.
    e: buys day 150; at_risk day 320.
    """
    await feed(api, [order("a", "a1", day(0)), order("b", "b1", day(0))])
    await known(api, "d", 10)
    await feed(api, [order("c", "c1", day(35)), order("b", "b2", day(40))])
    await sweep(api, 95)
    await feed(api, [order("e", "e1", day(150))])
    await sweep(api, 200)
    await sweep(api, 320)


def stage_table(body: dict) -> dict[str, int]:
    return {row["stage"]: row["customers"] for row in body["stages"]}


def moves(body: dict) -> dict[tuple[str | None, str], int]:
    return {(t["from_stage"], t["to_stage"]): t["customers"] for t in body["transitions"]}


async def test_stage_counts_of_a_past_day_are_the_counts_of_that_day(lifecycle_api: ApiClient):
    await a_year_of_a_small_shop(lifecycle_api)

    expected = {
        -1: {},
        0: {"new": 2},
        20: {"new": 2, "prospect": 1},
        95: {"prospect": 1, "new": 1, "active": 1, "at_risk": 1},
        200: {"prospect": 1, "new": 1, "at_risk": 2, "dormant": 1},
        320: {"prospect": 1, "at_risk": 1, "dormant": 2, "churned": 1},
    }
    for n, counts in expected.items():
        body = await analytics(lifecycle_api, "stages", at=date_of(n))
        assert body["at"] == date_of(n)
        assert [row["stage"] for row in body["stages"]] == [
            "prospect",
            "new",
            "active",
            "loyal",
            "at_risk",
            "dormant",
            "churned",
            "won_back",
        ]
        assert {s: c for s, c in stage_table(body).items() if c} == counts, n
        assert body["total"] == sum(counts.values())


async def test_stage_counts_default_to_today(lifecycle_api: ApiClient):
    await a_year_of_a_small_shop(lifecycle_api)
    await feed(lifecycle_api, [order("a", "a2", day(330))])

    body = await analytics(lifecycle_api, "stages")

    assert body["at"] == datetime.now(UTC).date().isoformat()
    assert stage_table(body)["won_back"] == 1
    assert stage_table(body)["churned"] == 0
    assert body["total"] == 5


async def test_transitions_count_the_moves_of_the_days_asked_for(lifecycle_api: ApiClient):
    await a_year_of_a_small_shop(lifecycle_api)

    # From day 1 (the first orders of day 0 are left out) to day 95 (its sweep is in).
    body = await analytics(lifecycle_api, "transitions", **{"from": date_of(1), "to": date_of(95)})

    assert body["period"] == {"from": "2025-01-02", "to": "2025-04-06"}
    assert moves(body) == {
        (None, "prospect"): 1,
        (None, "new"): 1,
        ("new", "at_risk"): 1,
        ("new", "active"): 1,
    }
    assert body["total"] == 4
    matrix = body["matrix"]
    assert matrix["from_stages"][:3] == [None, "prospect", "new"]
    assert len(matrix["to_stages"]) == 8
    assert [len(row) for row in matrix["customers"]] == [8] * 9
    grid = {
        (source, target): matrix["customers"][i][j]
        for i, source in enumerate(matrix["from_stages"])
        for j, target in enumerate(matrix["to_stages"])
    }
    assert {key: n for key, n in grid.items() if n} == moves(body)


async def test_transitions_over_the_whole_year(lifecycle_api: ApiClient):
    await a_year_of_a_small_shop(lifecycle_api)

    body = await analytics(lifecycle_api, "transitions", **{"from": date_of(0), "to": date_of(364)})

    assert moves(body) == {
        (None, "new"): 4,
        (None, "prospect"): 1,
        ("new", "at_risk"): 3,
        ("new", "active"): 1,
        ("active", "at_risk"): 1,
        ("at_risk", "dormant"): 3,
        ("dormant", "churned"): 1,
    }
    assert body["total"] == 14
    # Most customers first, ties in lifecycle order (newly known first).
    assert [(t["from_stage"], t["to_stage"]) for t in body["transitions"]] == [
        (None, "new"),
        ("new", "at_risk"),
        ("at_risk", "dormant"),
        (None, "prospect"),
        ("new", "active"),
        ("active", "at_risk"),
        ("dormant", "churned"),
    ]


async def test_transitions_default_to_the_last_30_days(lifecycle_api: ApiClient):
    await a_year_of_a_small_shop(lifecycle_api)

    body = await analytics(lifecycle_api, "transitions")

    today = datetime.now(UTC).date()
    assert body["period"] == {
        "from": (today - timedelta(days=29)).isoformat(),
        "to": today.isoformat(),
    }
    assert (body["transitions"], body["total"]) == ([], 0)


async def test_cohorts_follow_each_first_purchase_month(lifecycle_api: ApiClient):
    await feed(
        lifecycle_api,
        [
            order("a", "a1", datetime(2025, 1, 3, tzinfo=UTC)),
            order("a", "a2", datetime(2025, 3, 9, tzinfo=UTC)),
            order("b", "b1", datetime(2025, 1, 10, tzinfo=UTC)),
            order("d", "d1", datetime(2025, 1, 20, tzinfo=UTC)),
            order("d", "d2", datetime(2025, 2, 15, tzinfo=UTC)),
            order("d", "d3", datetime(2025, 3, 12, tzinfo=UTC)),
            # c buys twice in February: counted once there.
            order("c", "c1", datetime(2025, 2, 5, tzinfo=UTC)),
            order("c", "c2", datetime(2025, 2, 25, tzinfo=UTC)),
            order("c", "c3", datetime(2025, 4, 6, tzinfo=UTC)),
        ],
    )

    body = await analytics(lifecycle_api, "cohorts", from_month="2025-01", to_month="2025-03")

    assert (body["from_month"], body["to_month"]) == ("2025-01", "2025-03")
    assert body["through_month"] == datetime.now(UTC).strftime("%Y-%m")
    january, february, march = body["cohorts"]
    assert (january["cohort"], january["size"]) == ("2025-01", 3)
    assert [(m["month"], m["customers"]) for m in january["retention"][:4]] == [
        ("2025-01", 3),
        ("2025-02", 1),
        ("2025-03", 2),
        ("2025-04", 0),
    ]
    assert [m["share"] for m in january["retention"][:3]] == [1.0, pytest.approx(1 / 3), 2 / 3]
    assert [m["month_offset"] for m in january["retention"][:3]] == [0, 1, 2]
    assert january["retention"][-1]["month"] == body["through_month"]
    assert (february["size"], [m["customers"] for m in february["retention"][:3]]) == (
        1,
        [1, 0, 1],
    )
    assert march["size"] == 0
    assert march["retention"][0] == {
        "month_offset": 0,
        "month": "2025-03",
        "customers": 0,
        "share": None,
    }


async def test_a_cancelled_first_order_moves_the_customer_to_a_later_cohort(
    lifecycle_api: ApiClient,
):
    await feed(
        lifecycle_api,
        [
            order("a", "a1", datetime(2025, 1, 3, tzinfo=UTC)),
            order("a", "a2", datetime(2025, 2, 9, tzinfo=UTC)),
        ],
    )
    cancel = OrderCancelled(order_id="a1", customer_id="a", cancelled_at=day(50))
    await feed(lifecycle_api, [event(cancel, day(50))])

    body = await analytics(lifecycle_api, "cohorts", from_month="2025-01", to_month="2025-02")

    january, february = body["cohorts"]
    assert (january["size"], january["retention"][1]["customers"]) == (0, 0)
    assert february["size"] == 1


async def test_cohorts_default_to_the_last_12_months(lifecycle_api: ApiClient):
    body = await analytics(lifecycle_api, "cohorts")

    labels = [cohort["cohort"] for cohort in body["cohorts"]]
    assert len(labels) == 12
    assert labels[-1] == body["to_month"] == datetime.now(UTC).strftime("%Y-%m")
    assert all(cohort["size"] == 0 for cohort in body["cohorts"])


async def test_rates_over_a_period_of_the_small_shop(lifecycle_api: ApiClient):
    await a_year_of_a_small_shop(lifecycle_api)

    # Day 96 to day 320. Retained on day 95: new c, active b, at_risk a (d is a prospect).
    # On day 320: at_risk e, dormant b and c (a churned). e is the one new buyer.
    body = await analytics(lifecycle_api, "rates", **{"from": date_of(96), "to": date_of(320)})

    assert body["period"] == {"from": "2025-04-07", "to": "2025-11-17"}
    assert {key: value for key, value in body.items() if key != "period"} == {
        "customers_at_start": 3,
        "customers_at_end": 3,
        "new_buyers": 1,
        "churned": 1,
        "reactivated": 0,
        "retention_rate": pytest.approx(2 / 3),
        "churn_rate": pytest.approx(1 / 3),
        "buyers_at_end": 4,
        "repeat_buyers_at_end": 1,
        "repeat_purchase_rate": 0.25,
    }


async def test_rates_count_prospects_who_buy_as_new_and_the_won_back_as_reactivated(
    lifecycle_api: ApiClient,
):
    await a_year_of_a_small_shop(lifecycle_api)
    await feed(
        lifecycle_api,
        [order("a", "a2", day(330)), order("f", "f1", day(331)), order("d", "d1", day(332))],
    )

    body = await analytics(lifecycle_api, "rates", **{"from": date_of(321), "to": date_of(340)})

    # Start: e, b, c. End: e, b, c, a (won back), f (first seen buying) and d (a prospect
    # who bought): two new buyers, so a retention above 1 shows the reactivation.
    assert (body["customers_at_start"], body["customers_at_end"]) == (3, 6)
    assert (body["new_buyers"], body["churned"], body["reactivated"]) == (2, 0, 1)
    assert body["retention_rate"] == pytest.approx(4 / 3)
    assert body["churn_rate"] == 0.0
    assert (body["buyers_at_end"], body["repeat_buyers_at_end"]) == (6, 2)


async def test_rates_without_customers_at_the_start_are_null(lifecycle_api: ApiClient):
    await feed(lifecycle_api, [order("a", "a1", day(0)), order("a", "a2", day(3))])

    body = await analytics(lifecycle_api, "rates", **{"from": date_of(0), "to": date_of(10)})

    assert (body["customers_at_start"], body["customers_at_end"], body["new_buyers"]) == (0, 1, 1)
    assert (body["retention_rate"], body["churn_rate"]) == (None, None)
    assert body["repeat_purchase_rate"] == 1.0


async def repeat_buyer(api: ApiClient, customer_id: str, first_day: int) -> None:
    """Four monthly orders of 100 from ``first_day``: past the new window 100 days later."""
    await feed(
        api,
        [
            order(customer_id, f"{customer_id}-o{i}", day(first_day + i * 30), "100")
            for i in range(4)
        ],
    )


async def warned_customers(api: ApiClient) -> None:
    """One saved (growth, raised day 121), one lost (no tier, raised day 121), two open
    (growth, and strategic partner updated on day 385; raised day 380), one never warned
    (basic, below its 0.7 threshold)."""
    for customer_id in ("saved", "lost"):
        await repeat_buyer(api, customer_id, 0)
    await sweep(api, 120)
    await feed(
        api,
        [
            scores("saved", day(121), churn_risk=0.65, tier=ValueTier.GROWTH),
            scores("lost", day(121), churn_risk=0.8),
        ],
    )
    await feed(api, [order("saved", "saved-again", day(130), "100")])
    # 185 days silent: dormant, so not warned again; the warning raised on day 121 expired
    # on day 211.
    await sweep(api, 275)
    for customer_id in ("growth", "partner", "basic"):
        await repeat_buyer(api, customer_id, 280)
    await feed(
        api,
        [
            scores("growth", day(380), churn_risk=0.65, tier=ValueTier.GROWTH),
            scores("partner", day(380), churn_risk=0.55, tier=ValueTier.STRATEGIC_PARTNER),
            scores("basic", day(380), churn_risk=0.55, tier=ValueTier.BASIC),
        ],
    )
    # A new grade updates the open warning: still open.
    partner_regraded = scores(
        "partner", day(385), churn_risk=0.55, tier=ValueTier.STRATEGIC_PARTNER, grade=Grade.LOW
    )
    await feed(api, [partner_regraded])
    listed = await api.get("/v1/warnings", params={"customer_id": "partner"})
    assert [w["status"] for w in listed.json()["items"]] == ["updated"]


def by_tier(body: dict) -> dict[str, tuple[int, int, int, float | None]]:
    return {
        row["value_tier"]: (row["open"], row["saved"], row["lost"], row["save_rate"])
        for row in body["tiers"]
    }


async def test_warning_outcomes_per_tier(lifecycle_api: ApiClient):
    await warned_customers(lifecycle_api)

    body = await analytics(lifecycle_api, "warnings")

    assert by_tier(body) == {
        "strategic_partner": (1, 0, 0, None),
        "growth": (1, 1, 0, 1.0),
        "profit": (0, 0, 0, None),
        "basic": (0, 0, 0, None),
        "unknown": (0, 0, 1, 0.0),
    }
    assert body["total"] == {"open": 2, "saved": 1, "lost": 1, "save_rate": 0.5}
    assert (body["raised_from"], body["raised_to"]) == (None, None)


async def test_warning_outcomes_of_warnings_raised_in_a_window(lifecycle_api: ApiClient):
    await warned_customers(lifecycle_api)

    early = await analytics(lifecycle_api, "warnings", raised_to=day(200).isoformat())
    late = await analytics(lifecycle_api, "warnings", raised_from=date_of(200))

    assert early["total"] == {"open": 0, "saved": 1, "lost": 1, "save_rate": 0.5}
    assert by_tier(early)["growth"] == (0, 1, 0, 1.0)
    assert late["total"] == {"open": 2, "saved": 0, "lost": 0, "save_rate": None}
    # A date without a time or an offset is midnight UTC.
    assert late["raised_from"] == "2025-07-20T00:00:00Z"


async def test_the_raised_window_includes_its_start_and_excludes_its_end(
    lifecycle_api: ApiClient,
):
    await warned_customers(lifecycle_api)
    raised = day(121).isoformat()

    before = await analytics(lifecycle_api, "warnings", raised_to=raised)
    on_the_day = await analytics(
        lifecycle_api, "warnings", raised_from=raised, raised_to=day(121.5).isoformat()
    )

    assert before["total"] == {"open": 0, "saved": 0, "lost": 0, "save_rate": None}
    assert on_the_day["total"] == {"open": 0, "saved": 1, "lost": 1, "save_rate": 0.5}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("stages", {"at": "2025-02-30"}, "at"),
        ("transitions", {"from": "2025-03-02", "to": "2025-03-01"}, "from"),
        ("transitions", {"to": "yesterday"}, "to"),
        ("transitions", {"to": "0001-01-05"}, "to"),
        ("rates", {"from": "2025-03-02", "to": "2025-03-01"}, "from"),
        ("cohorts", {"from_month": "2025-13"}, "from_month"),
        ("cohorts", {"from_month": "2025-1", "to_month": "2025-02"}, "from_month"),
        ("cohorts", {"from_month": "2025-03", "to_month": "2025-02"}, "from_month"),
        ("cohorts", {"from_month": "2020-01", "to_month": "2025-01"}, "from_month"),
        ("cohorts", {"to_month": "2025/01"}, "to_month"),
        ("cohorts", {"from_month": "1969-12", "to_month": "1970-02"}, "from_month"),
        ("cohorts", {"to_month": "0001-02"}, "to_month"),
        ("warnings", {"raised_from": "2025-03-02", "raised_to": "2025-03-01"}, "raised_from"),
        ("warnings", {"raised_to": "soon"}, "raised_to"),
    ],
)
async def test_invalid_parameters_are_refused_naming_the_field(
    lifecycle_api: ApiClient, path: str, params: dict[str, str], field: str
):
    response = await lifecycle_api.get(f"/v1/analytics/{path}", params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_sixty_cohorts_are_the_most_one_request_gets(lifecycle_api: ApiClient):
    body = await analytics(lifecycle_api, "cohorts", from_month="2021-02", to_month="2026-01")

    assert len(body["cohorts"]) == 60


async def test_analytics_need_a_read_key(lifecycle_api: ApiClient):
    for path in ("stages", "transitions", "cohorts", "rates", "warnings"):
        response = await lifecycle_api.client.get(f"/v1/analytics/{path}")
        assert response.status_code == 401, path


async def test_days_and_months_are_counted_in_utc_whatever_offset_an_event_carries(
    lifecycle_api: ApiClient,
):
    # 23:30 in New York on 31 January is 04:30 UTC on 1 February.
    await feed(
        lifecycle_api, [order("ny", "ny1", datetime.fromisoformat("2025-01-31T23:30-05:00"))]
    )

    cohorts = await analytics(lifecycle_api, "cohorts", from_month="2025-01", to_month="2025-02")
    assert [(c["cohort"], c["size"]) for c in cohorts["cohorts"]] == [
        ("2025-01", 0),
        ("2025-02", 1),
    ]
    jan_31 = await analytics(lifecycle_api, "stages", at="2025-01-31")
    assert jan_31["total"] == 0


async def test_a_late_order_never_makes_a_past_count_negative(lifecycle_api: ApiClient):
    known = datetime(2025, 5, 10, tzinfo=UTC)
    snapshot = CustomerSnapshot(customer_id="late", created_at=known, updated_at=known)
    await feed(lifecycle_api, [event(CustomerCreated(customer=snapshot), known)])
    await feed(lifecycle_api, [order("late", "l1", datetime(2025, 5, 5, tzinfo=UTC))])

    for day in ("2025-05-05", "2025-05-09", "2025-05-10", "2025-05-11"):
        counts = await analytics(lifecycle_api, "stages", at=day)
        assert all(s["customers"] >= 0 for s in counts["stages"]), (day, counts)
    assert {s["stage"]: s["customers"] for s in counts["stages"]}["new"] == 1


async def test_distributions_count_customers_by_predicted_clv_and_churn_risk(
    lifecycle_api: ApiClient,
):
    await feed(lifecycle_api, [order(c, f"{c}1", day(0)) for c in ("a", "b", "c", "d")])
    await feed(
        lifecycle_api,
        [
            scores("a", day(1), churn_risk=0.05, clv="0.00"),
            scores("b", day(1), churn_risk=0.55, clv="40.00"),
            scores("c", day(1), churn_risk=1.0, clv="100.00"),
        ],
    )

    found = await analytics(lifecycle_api, "distributions", bins="4")

    clv = found["predicted_clv_12m"]
    assert clv["edges"] == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert clv["counts"] == [1, 1, 0, 1]  # the largest value falls in the last bin
    assert clv["missing"] == 1  # d has no scores yet
    risk = found["churn_risk"]
    assert risk["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert risk["counts"] == [1, 0, 1, 1]
    refused = await lifecycle_api.get("/v1/analytics/distributions", params={"bins": 101})
    assert refused.status_code == 422


async def test_monthly_stage_counts_give_the_stage_mix_at_month_ends_in_one_request(
    lifecycle_api: ApiClient,
):
    await a_year_of_a_small_shop(lifecycle_api)

    points = await lifecycle_api.get(
        "/v1/analytics/stages/monthly", params={"to": date_of(320), "months": 3}
    )

    assert points.status_code == 200, points.text
    found = points.json()
    # Day 320 is 2025-11-17: the points are the ends of September and October, then that day.
    assert [p["at"] for p in found] == ["2025-09-30", "2025-10-31", "2025-11-17"]
    for point in found:
        single = await analytics(lifecycle_api, "stages", at=point["at"])
        assert point == single
    too_many = await lifecycle_api.get("/v1/analytics/stages/monthly", params={"months": 61})
    assert too_many.status_code == 422
