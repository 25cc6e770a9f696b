"""Purchase summaries (PostgreSQL) equal the ledger they summarise, whatever changed it.

Random event streams (orders, redeliveries, same-day orders, free orders, partial and full
refunds, cancellations, refunds and cancellations ahead of their order, merges, erasures,
profiling objections) run through the consumer's batch finisher; after a random number of
batches the whole-base read (summaries refreshed for the customers marked since) is compared
with the orders read one by one, per purchase day and as the histories the models see.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select, text
from test_ledger_loading import assert_same_days, days_of
from test_scores_api import AS_OF, START, apply, fit

from crm_contracts import (
    Channel,
    ConsentChanged,
    ConsentState,
    CustomerErased,
    CustomerMerged,
    EventPayload,
    Money,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    Purpose,
)
from crm_shared import hold_job_lock
from crm_shared.testing import ApiClient
from scoring_service.db.models import PLUMBING, STALE_PURCHASE_SUMMARIES, Purchase
from scoring_service.domain.models import fit_models
from scoring_service.domain.purchase_history import CustomerHistories, histories_as_of
from scoring_service.workflows.ledger import purchase_day
from scoring_service.workflows.ledger_loading import LoadedLedger, load_ledger
from scoring_service.workflows.purchase_summaries import refresh_between_fits
from scoring_service.workflows.scoring import FIT_JOB, policy_of, rescore_customers
from scoring_testing import app_settings, running_api


@dataclass
class Shop:
    """What a random shop has sent so far, to draw the next event from."""

    rng: random.Random
    customers: list[str]
    placed: dict[str, OrderPlaced] = field(default_factory=dict)
    refunds: int = 0

    def customer(self) -> str:
        return self.rng.choice(self.customers)

    def order(self, order_id: str | None = None) -> OrderPlaced:
        rng = self.rng
        amount = Decimal(rng.choice([0, rng.randrange(1, 30_000)])) / 100
        day = rng.randrange(0, 360)
        moment = START + timedelta(days=day, seconds=rng.randrange(0, 86_400))
        return OrderPlaced(
            order_id=order_id or f"o{len(self.placed)}-{rng.randrange(10**6)}",
            customer_id=self.customer(),
            placed_at=moment,
            total=Money(amount=amount, currency="USD"),
        )

    def event(self) -> EventPayload:
        rng = self.rng
        kind = rng.choices(
            ["order", "again", "same day", "refund", "cancel", "ahead", "merge", "erase", "object"],
            weights=[40, 6, 6, 12, 6, 4, 2, 1, 2],
        )[0]
        known = list(self.placed.values())
        if kind == "again" and known:
            return rng.choice(known)  # delivered once more
        if kind == "same day" and known:
            earlier = rng.choice(known)
            placed = self.order().model_copy(
                update={"customer_id": earlier.customer_id, "placed_at": earlier.placed_at}
            )
            self.placed[placed.order_id] = placed
            return placed
        if kind in ("refund", "cancel") and known:
            target = rng.choice(known)
            if kind == "cancel":
                return OrderCancelled(
                    order_id=target.order_id,
                    cancelled_at=target.placed_at,
                    customer_id=target.customer_id,
                )
            self.refunds += 1
            share = rng.choice([Decimal(1), Decimal("0.5"), Decimal("0.01")])
            amount = max(Decimal("0.01"), (target.total.amount * share).quantize(Decimal("0.01")))
            return OrderRefunded(
                order_id=target.order_id,
                refund_id=f"r{rng.choice([self.refunds, 1])}",  # some refund ids repeat
                refunded_at=target.placed_at,
                amount=Money(amount=amount, currency="USD"),
                customer_id=target.customer_id,
            )
        if kind == "ahead":
            # A cancellation or refund before its order: a placeholder row, filled in later.
            order = self.order()
            self.placed[order.order_id] = order
            return OrderCancelled(
                order_id=order.order_id, cancelled_at=order.placed_at, customer_id=order.customer_id
            )
        if kind == "merge":
            survivor, merged = rng.sample(self.customers, 2)
            return CustomerMerged(customer_id=survivor, merged_customer_id=merged, merged_at=AS_OF)
        if kind == "erase":
            return CustomerErased(customer_id=self.customer(), erased_at=AS_OF)
        if kind == "object":
            decision = ConsentState(
                channel=Channel.EMAIL,
                purpose=Purpose.PROFILING,
                granted=rng.random() < 0.4,
                source="account_settings",
                changed_at=START + timedelta(seconds=rng.randrange(10**6)),
            )
            return ConsentChanged(customer_id=self.customer(), consent=decision)
        placed = self.order()
        self.placed[placed.order_id] = placed
        return placed


async def whole_and_reference(api: ApiClient) -> tuple[LoadedLedger, LoadedLedger]:
    """The whole-base read (summaries) and the same customers' orders read one by one."""
    async with api.app.state.runtime.sessions() as session, session.begin():
        whole = await load_ledger(session)
        ids = sorted(set(await session.scalars(select(Purchase.customer_id).distinct())))
        reference = await load_ledger(session, ids)
        stale = await session.scalar(select(func.count()).select_from(STALE_PURCHASE_SUMMARIES))
    assert stale == 0  # the read took every mark
    return whole, reference


def assert_same_histories(
    got: CustomerHistories, got_ids: list[str], want: CustomerHistories, want_ids: list[str]
) -> None:
    assert [got_ids[c] for c in got.customer] == [want_ids[c] for c in want.customer]
    for name in ("first_day", "last_day", "purchase_days", "order_count"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name
    for name in ("total_spend", "spend_12m", "spend_last_90d", "repeat_spend_mean"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-12, atol=1e-9)


def assert_same_ledger(whole: LoadedLedger, reference: LoadedLedger) -> None:
    assert_same_days(days_of(whole), days_of(reference))
    for as_of in (AS_OF - timedelta(days=200), AS_OF - timedelta(days=45), AS_OF):
        day = purchase_day(as_of)
        assert_same_histories(
            histories_as_of(whole.ledger, day),
            whole.customer_ids,
            histories_as_of(reference.ledger, day),
            reference.customer_ids,
        )


def assert_close(got: Any, want: Any, where: str = "") -> None:
    """Equal JSON-like values, floats within the fit's float tolerance (summation order)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), where
        assert got.keys() == want.keys(), where
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple), where
        assert len(got) == len(want), where
        for n, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{where}[{n}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-12), where
    else:
        assert got == want, where


@pytest.mark.parametrize("seed", range(6))
async def test_summaries_equal_the_orders_after_any_event_stream(
    postgres_url: str, seed: int
) -> None:
    rng = random.Random(seed)
    shop = Shop(rng, [f"c{n:02d}" for n in range(25)])
    async with running_api(app_settings(postgres_url)) as api:
        for _ in range(12):
            await apply(api, [shop.event() for _ in range(rng.randrange(1, 40))])
            if rng.random() < 0.5:  # marks also pile up over several batches
                assert_same_ledger(*await whole_and_reference(api))
        assert_same_ledger(*await whole_and_reference(api))


async def test_a_fit_from_summaries_equals_one_from_the_orders_and_its_scores_stand(
    postgres_url: str,
) -> None:
    rng = random.Random(11)
    shop = Shop(rng, [f"c{n:03d}" for n in range(400)])
    async with running_api(app_settings(postgres_url)) as api:
        await apply(api, [shop.order() for _ in range(1_500)])
        await apply(api, [shop.event() for _ in range(300)])
        model = await fit(api)
        _, reference = await whole_and_reference(api)
        histories = histories_as_of(reference.ledger, purchase_day(AS_OF))
        settings = api.app.state.settings
        expected = fit_models(
            histories, policy_of(settings), previous=None, ledger=reference.ledger
        ).models
        assert_close(model["bg_nbd"], expected.bg_nbd_dict())
        assert_close(model["gamma_gamma"], expected.gamma_gamma_dict())
        assert_close(model["thresholds"], expected.thresholds_dict())
        assert_close(model["churn_calibration"], expected.churn_calibration_dict())

        # Scored again from their orders one by one, no customer's stored score changes.
        async with api.app.state.runtime.sessions() as session:
            outbox = select(func.count()).select_from(PLUMBING.outbox)
            published = await session.scalar(outbox)
        async with api.app.state.runtime.sessions() as session, session.begin():
            everyone = dict.fromkeys(reference.customer_ids, AS_OF)
            await rescore_customers(session, everyone, settings=settings)
        async with api.app.state.runtime.sessions() as session:
            assert await session.scalar(outbox) == published


async def test_an_order_committed_during_a_refresh_is_summarised_by_the_next(
    postgres_url: str,
) -> None:
    shop = Shop(random.Random(3), ["late"])
    async with running_api(app_settings(postgres_url)) as api:
        await apply(api, [shop.order()])
        sessions = api.app.state.runtime.sessions
        async with sessions() as intake, intake.begin():
            await intake.execute(
                text(
                    "insert into purchases (order_id, customer_id, placed_at, purchase_day,"
                    " amount, refunded, cancelled)"
                    " values ('pending', 'late', now(), 20000, 5, 0, false)"
                )
            )
            # The refresh runs and commits while the intake's transaction is open.
            whole, _ = await whole_and_reference(api)
            assert len(whole.ledger.day) == 1
        whole, reference = await whole_and_reference(api)
        assert len(whole.ledger.day) == 2
        assert_same_ledger(whole, reference)


async def marks(api: ApiClient) -> int:
    async with api.app.state.runtime.sessions() as session:
        count = select(func.count()).select_from(STALE_PURCHASE_SUMMARIES)
        return int(await session.scalar(count) or 0)


async def test_the_scheduled_refresh_takes_the_marks_unless_a_fit_is_running(
    postgres_url: str,
) -> None:
    shop = Shop(random.Random(5), ["a", "b", "c"])
    async with running_api(app_settings(postgres_url)) as api:
        runtime = api.app.state.runtime
        await apply(api, [shop.order() for _ in range(6)])
        assert await marks(api) > 0
        async with runtime.sessions() as fitting, fitting.begin():
            assert await hold_job_lock(fitting, FIT_JOB)
            await refresh_between_fits(runtime, FIT_JOB)  # skipped: a fit holds the lock
            assert await marks(api) > 0
        await refresh_between_fits(runtime, FIT_JOB)
        assert await marks(api) == 0
        whole, reference = await whole_and_reference(api)
        assert_same_ledger(whole, reference)
