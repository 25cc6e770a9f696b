"""Stage rules through the API: read, validated replace with versions, and the dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_shared import Scope
from crm_shared.testing import ApiClient
from lifecycle_testing import feed, order, scores

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


async def test_the_defaults_are_in_force_until_rules_are_stored(lifecycle_api: ApiClient):
    response = await lifecycle_api.get("/v1/rules")

    assert response.status_code == 200
    body = response.json()
    assert (body["version"], body["created_by"]) == (0, "defaults")
    assert body["rules"]["new_days"] == 90
    assert (body["rules"]["at_risk_from_days"], body["rules"]["churned_from_days"]) == (91, 301)
    assert (await lifecycle_api.get("/v1/rules/versions")).json() == []


async def test_replaced_rules_become_the_next_version(lifecycle_api: ApiClient):
    first = await lifecycle_api.put(
        "/v1/rules",
        Scope.ADMIN,
        json={"rules": {"at_risk_from_days": 60, "dormant_from_days": 150}, "comment": "fashion"},
    )
    second = await lifecycle_api.put("/v1/rules", Scope.ADMIN, json={"rules": {"new_days": 60}})

    assert first.status_code == 200, first.text
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    current = (await lifecycle_api.get("/v1/rules")).json()
    # A replacement is whole: fields left out are back to their defaults.
    assert (current["rules"]["new_days"], current["rules"]["at_risk_from_days"]) == (60, 91)
    versions = (await lifecycle_api.get("/v1/rules/versions")).json()
    assert [(v["version"], v["comment"]) for v in versions] == [(2, None), (1, "fashion")]
    assert versions[1]["created_by"] == "test-admin"


async def test_invalid_rules_are_refused_with_every_field_at_fault(lifecycle_api: ApiClient):
    response = await lifecycle_api.put(
        "/v1/rules",
        Scope.ADMIN,
        json={
            "rules": {
                "dormant_from_days": 80,  # before at_risk (91): overlapping ranges
                "dormant_rhythm": {"enter": 1.0, "leave": 0.5},  # below at_risk's 2.0
                "loyal_tiers": [],
                "loyal_grades": [],  # nothing qualifies: loyal unreachable
                "colour": "blue",
            }
        },
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["rules.colour"]

    response = await lifecycle_api.put(
        "/v1/rules",
        Scope.ADMIN,
        json={
            "rules": {
                "dormant_from_days": 80,
                "dormant_rhythm": {"enter": 1.0, "leave": 0.5},
                "loyal_tiers": [],
                "loyal_grades": [],
            }
        },
    )
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"rules.dormant_from_days", "rules.dormant_rhythm.enter", "rules.loyal_tiers"} <= fields
    assert (await lifecycle_api.get("/v1/rules")).json()["version"] == 0


async def test_only_admins_replace_rules(lifecycle_api: ApiClient):
    response = await lifecycle_api.put("/v1/rules", Scope.WRITE, json={"rules": {}})

    assert response.status_code == 403


async def test_the_dry_run_counts_moves_and_warnings_under_candidate_rules(
    lifecycle_api: ApiClient,
):
    # Three one-time buyers silent 100, 130 and 200 days at day 200, all up to date.
    await feed(lifecycle_api, [order("a", "o1", day(100)), order("b", "o2", day(70))])
    await feed(lifecycle_api, [order("c", "o3", day(0))])
    await feed(lifecycle_api, [scores("a", day(150), churn_risk=0.65)])
    await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(200).isoformat()})

    candidate = {
        "at_risk_from_days": 60,
        "dormant_from_days": 120,
        "warning_churn_risk_by_tier": {
            "strategic_partner": 0.5,
            "growth": 0.6,
            "profit": 0.6,
            "basic": 0.6,
            "unknown": 0.6,
        },
    }
    response = await lifecycle_api.post(
        "/v1/rules/dry-run",
        json={"rules": candidate, "as_of": day(200).isoformat()},
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["customers"] == 3
    assert report["current_moves"] == []
    moves = {(m["from_stage"], m["to_stage"]): m["customers"] for m in report["candidate_moves"]}
    assert moves == {("at_risk", "dormant"): 1}  # b: 130 days silent
    # a (at_risk, risk 0.65) is warned under 0.6 but not under the current 0.7.
    assert (report["current_warnings"], report["candidate_warnings"]) == (0, 1)
    assert (await lifecycle_api.get("/v1/rules")).json()["version"] == 0  # nothing changed


async def test_a_dry_run_of_invalid_rules_is_refused(lifecycle_api: ApiClient):
    response = await lifecycle_api.post(
        "/v1/rules/dry-run", json={"rules": {"churned_from_days": 10}}
    )

    assert response.status_code == 422
    assert "rules.churned_from_days" in {e["field"] for e in response.json()["errors"]}


async def test_new_rules_reach_every_customer_at_the_next_sweep(lifecycle_api: ApiClient):
    await feed(lifecycle_api, [order("a", "o1", day(0))])
    await lifecycle_api.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(100).isoformat()})
    assert (await lifecycle_api.get("/v1/customers/a/stage")).json()["stage"] == "at_risk"

    await lifecycle_api.put(
        "/v1/rules", Scope.ADMIN, json={"rules": {"at_risk_from_days": 30, "dormant_from_days": 95}}
    )
    swept = await lifecycle_api.post(
        "/v1/sweeps", Scope.ADMIN, json={"as_of": day(100).isoformat()}
    )

    assert swept.json()["moved"] == 1
    assert (await lifecycle_api.get("/v1/customers/a/stage")).json()["stage"] == "dormant"
