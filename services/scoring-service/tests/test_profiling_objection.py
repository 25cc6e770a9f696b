"""Customers who object to profiling (GDPR art. 21/22) are neither scored, segmented nor fitted
on; their orders still reach the ledger, and withdrawing the objection scores them again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from test_scores_api import AS_OF, START, a_base, an_order, apply, fit, scores

from crm_contracts import (
    Channel,
    ConsentChanged,
    ConsentState,
    OrderPlaced,
    Purpose,
    ScoreUpdated,
    decode_event,
)
from crm_shared.testing import ApiClient
from scoring_service.db.models import PLUMBING, Purchase
from scoring_service.workflows.scoring import rescore_all


def profiling(customer: str, at: datetime, *, objects: bool) -> ConsentChanged:
    decision = ConsentState(
        channel=Channel.EMAIL,
        purpose=Purpose.PROFILING,
        granted=not objects,
        source="account_settings",
        changed_at=at,
    )
    return ConsentChanged(customer_id=customer, consent=decision)


def a_regular(customer: str = "objector") -> list[OrderPlaced]:
    return [an_order(customer, n, 30 * n + 10, "90.00") for n in range(6)]


async def published_scores_of(api: ApiClient, customer: str) -> list[ScoreUpdated]:
    async with api.app.state.runtime.sessions() as session:
        payloads = (await session.scalars(select(PLUMBING.outbox.c.payload))).all()
    events = [decode_event(p).data for p in payloads if '"score.updated"' in p]
    return [e for e in events if isinstance(e, ScoreUpdated) and e.customer_id == customer]


async def orders_in_ledger(api: ApiClient, customer: str) -> int:
    async with api.app.state.runtime.sessions() as session:
        query = select(func.count()).where(Purchase.customer_id == customer)
        return int(await session.scalar(query) or 0)


async def test_an_objecting_customer_is_kept_out_of_scores_segments_and_the_fit(
    scoring_api: ApiClient,
) -> None:
    await apply(scoring_api, [profiling("objector", START, objects=True)])
    await apply(scoring_api, [*a_base(), *a_regular()])

    model = await fit(scoring_api)

    assert model["customers"] == 60  # the base, without the objector
    assert await orders_in_ledger(scoring_api, "objector") == 6
    assert (await scoring_api.get("/v1/scores/objector")).status_code == 404
    assert await published_scores_of(scoring_api, "objector") == []
    overview = (await scoring_api.get("/v1/segments")).json()
    assert sum(seg["customers"] for seg in overview["rfm_segments"]) == 60
    assert sum(c["customers"] for c in overview["clusters"]) == 60


async def test_an_objection_deletes_the_score_and_later_orders_do_not_bring_it_back(
    scoring_api: ApiClient,
) -> None:
    await apply(scoring_api, [*a_base(), *a_regular()])
    await fit(scoring_api)
    assert (await scores(scoring_api, "objector"))["order_count"] == 6

    await apply(scoring_api, [profiling("objector", AS_OF, objects=True)])
    assert (await scoring_api.get("/v1/scores/objector")).status_code == 404
    published = len(await published_scores_of(scoring_api, "objector"))

    await apply(scoring_api, [an_order("objector", 9, 362, "15.00")])
    runtime, settings = scoring_api.app.state.runtime, scoring_api.app.state.settings
    await rescore_all(runtime, settings, as_of=AS_OF + timedelta(days=30))
    assert (await fit(scoring_api))["customers"] == 60

    assert (await scoring_api.get("/v1/scores/objector")).status_code == 404
    assert len(await published_scores_of(scoring_api, "objector")) == published
    assert await orders_in_ledger(scoring_api, "objector") == 7


async def test_withdrawing_the_objection_scores_the_customer_again(scoring_api: ApiClient) -> None:
    await apply(scoring_api, [profiling("objector", START, objects=True)])
    await apply(scoring_api, [*a_base(), *a_regular()])
    await fit(scoring_api)

    await apply(scoring_api, [profiling("objector", AS_OF, objects=False)])

    assert (await scores(scoring_api, "objector"))["order_count"] == 6
    [published] = await published_scores_of(scoring_api, "objector")
    assert published.order_count == 6
    assert (await fit(scoring_api))["customers"] == 61
