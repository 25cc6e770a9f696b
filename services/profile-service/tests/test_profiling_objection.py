"""The profiling purpose (GDPR art. 21/22): one decision per customer; the 360 withholds scores."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from test_customer_360 import NOW, apply, scores_for, warning_for

from crm_contracts import Stage, StageChanged
from profile_service.db.models import PLUMBING, ScoreView
from profile_testing import Api


async def decide(api: Api, cid: str, channel: str, *, objects: bool, hours: int) -> dict:
    answer = await api.put(
        f"/v1/customers/{cid}/consents/{channel}/profiling",
        json={
            "granted": not objects,
            "source": "account_settings",
            "changed_at": (NOW - timedelta(hours=48 - hours)).isoformat(),
        },
    )
    assert answer.status_code == 200, answer.text
    body: dict = answer.json()
    return body


async def published_profiling(api: Api) -> list[dict]:
    async with api.app.state.runtime.sessions() as session:
        payloads = await session.scalars(
            select(PLUMBING.outbox.c.payload).order_by(PLUMBING.outbox.c.id)
        )
        events = [json.loads(payload) for payload in payloads]
    return [
        e["data"]["consent"]
        for e in events
        if e["type"] == "consent.changed" and e["data"]["consent"]["purpose"] == "profiling"
    ]


async def test_an_objecting_customer_360_withholds_scores_and_warnings(api: Api) -> None:
    cid = (await api.create_customer(email="objects@example.com"))["id"]
    stage = StageChanged(
        customer_id=cid, stage=Stage.ACTIVE, changed_at=NOW, cause="evt-1", reason="2nd order"
    )
    await apply(
        api, scores_for(cid, as_of=NOW, churn_risk=0.3), stage, warning_for(cid, churn_risk=0.8)
    )

    await decide(api, cid, "email", objects=True, hours=1)
    # A score published before scoring-service heard of the objection arrives afterwards.
    await apply(api, scores_for(cid, as_of=NOW + timedelta(hours=1), churn_risk=0.4))

    view = (await api.get(f"/v1/customers/{cid}/360")).json()
    assert view["profiling"] == {
        "objected": True,
        "since": (NOW - timedelta(hours=47)).isoformat().replace("+00:00", "Z"),
        "withheld": ["scores", "segments", "churn_warning"],
    }
    assert view["scores"] is None
    assert view["churn_warning"] is None
    assert view["lifecycle"]["stage"] == "active"  # stages follow orders: still shown
    [published] = await published_profiling(api)
    assert published["granted"] is False


async def test_the_objection_deletes_the_stored_copy_of_the_scores(api: Api) -> None:
    cid = (await api.create_customer(email="minimal@example.com"))["id"]
    await apply(api, scores_for(cid, as_of=NOW, churn_risk=0.3))

    await decide(api, cid, "sms", objects=True, hours=1)

    async with api.app.state.runtime.sessions() as session:
        assert await session.get(ScoreView, cid) is None


async def test_profiling_is_one_decision_whatever_the_channel(api: Api) -> None:
    cid = (await api.create_customer(email="channels@example.com"))["id"]
    await decide(api, cid, "email", objects=True, hours=1)
    # Newer, on another channel: replaces it. Older, on a third: changes nothing.
    await decide(api, cid, "push", objects=False, hours=3)
    kept = await decide(api, cid, "sms", objects=True, hours=2)

    assert kept["channel"] == "push"
    assert kept["granted"] is True
    consents = (await api.get(f"/v1/customers/{cid}/consents")).json()
    assert [(c["channel"], c["purpose"]) for c in consents] == [("push", "profiling")]
    assert [p["granted"] for p in await published_profiling(api)] == [False, True]
    view = (await api.get(f"/v1/customers/{cid}/360")).json()
    assert view["profiling"] == {"objected": False, "since": None, "withheld": []}


async def test_withdrawing_the_objection_shows_the_next_scores(api: Api) -> None:
    cid = (await api.create_customer(email="returns@example.com"))["id"]
    await decide(api, cid, "email", objects=True, hours=1)
    await decide(api, cid, "email", objects=False, hours=2)
    await apply(api, scores_for(cid, as_of=NOW, churn_risk=0.3))

    view = (await api.get(f"/v1/customers/{cid}/360")).json()
    assert view["profiling"]["objected"] is False
    assert view["scores"]["churn_risk"] == 0.3
