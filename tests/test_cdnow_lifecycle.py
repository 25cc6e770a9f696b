"""CDNOW purchases through scoring and lifecycle on the real broker: stages and warnings.

The calibration purchases (to 1997-09-30) are published as orders with their own times;
scoring-service fits its models as of 1997-09-30 and publishes scores; lifecycle-service
applies orders and scores and sweeps at 1997-09-30. The warnings are then checked against
what really happened in the 39 holdout weeks.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from crm_contracts import Topic, build_event, encode_event
from crm_shared import Scope
from crm_shared.testing import ApiClient, EmbeddedBroker
from lifecycle_service.db.models import ChurnWarningRow, CustomerLifecycleRow, LifecycleOrder
from lifecycle_service.domain.warning_policy import WARNED_STAGES
from lifecycle_testing import app_settings as lifecycle_settings
from lifecycle_testing import running_api as running_lifecycle
from scoring_testing import CdnowPurchase, cdnow_purchases
from scoring_testing import app_settings as scoring_settings
from scoring_testing import running_api as running_scoring

pytestmark = pytest.mark.kafka
CALIBRATION_END = date(1997, 9, 30)
SWEEP_AT = datetime(1997, 9, 30, tzinfo=UTC)
CUSTOMERS = 2_357


async def publish_orders(bootstrap: str, purchases: Sequence[CdnowPurchase]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        sent = []
        for purchase in purchases:
            placed = purchase.as_order()
            event = build_event(placed, source="/tests/cdnow", time=placed.placed_at)
            sent.append(
                await producer.send(Topic.ORDERS, encode_event(event), key=event.subject.encode())
            )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def wait_until(api: ApiClient, query: object, expected: int, what: str) -> None:
    count = None
    for _ in range(1_200):
        async with api.app.state.runtime.sessions() as session:
            count = await session.scalar(query)  # type: ignore[call-overload]
        if count == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: {count}, expected {expected}")


async def test_cdnow_replay_gives_every_customer_a_stage_and_warnings_that_mean_something(
    tmp_path: Path, kafka_broker: EmbeddedBroker
) -> None:
    run = uuid.uuid4().hex[:8]
    broker = {"kafka_enabled": True, "kafka_bootstrap_servers": kafka_broker.bootstrap_servers}
    scoring = scoring_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'scoring.db'}", service_name=f"scoring-{run}", **broker
    )
    lifecycle = lifecycle_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'lifecycle.db'}",
        service_name=f"lifecycle-{run}",
        **broker,
    )
    everything = list(cdnow_purchases())
    calibration = [p for p in everything if p.day <= CALIBRATION_END]
    # The topic may hold other tests' orders: only this replay's customers are counted below.
    async with running_scoring(scoring) as scores, running_lifecycle(lifecycle) as stages:
        await publish_orders(kafka_broker.bootstrap_servers, calibration)
        await wait_until(
            stages,
            select(func.count())
            .select_from(LifecycleOrder)
            .where(LifecycleOrder.order_id.startswith("cdnow-")),
            len(calibration),
            "orders in lifecycle",
        )
        fitted = await scores.post(
            "/v1/models/fit", Scope.ADMIN, json={"as_of": SWEEP_AT.isoformat()}, timeout=120
        )
        assert fitted.status_code == 201, fitted.text
        await wait_until(
            stages,
            select(func.count())
            .select_from(CustomerLifecycleRow)
            .where(CustomerLifecycleRow.scores_as_of == SWEEP_AT),
            CUSTOMERS,
            "customers scored in lifecycle",
        )
        swept = await stages.post("/v1/sweeps", Scope.ADMIN, json={"as_of": SWEEP_AT.isoformat()})
        assert swept.status_code == 201, swept.text

        async with stages.app.state.runtime.sessions() as session:
            rows = (
                await session.execute(
                    select(CustomerLifecycleRow.customer_id, CustomerLifecycleRow.stage).where(
                        CustomerLifecycleRow.customer_id.startswith("cdnow-")
                    )
                )
            ).all()
            warnings = (await session.execute(select(ChurnWarningRow))).scalars().all()

    stage_of = dict(rows)
    distribution = Counter(stage_of.values())
    assert len(stage_of) == CUSTOMERS
    warned = {w.customer_id for w in warnings if w.status in ("open", "updated")}
    ever_warned = {w.customer_id for w in warnings}
    bought_later = {p.customer for p in everything if p.day > CALIBRATION_END}
    silent = set(stage_of) - bought_later
    precision = len(warned & silent) / len(warned)
    recall = len(warned & silent) / len(silent)
    # Only active, loyal, won_back and at_risk customers are warned (dormant ones are past it).
    eligible = {cid for cid, stage in stage_of.items() if stage in WARNED_STAGES}
    unwarned = eligible - warned
    unwarned_silent = len(unwarned & silent) / len(unwarned)
    print(
        f"\nCDNOW stages at {CALIBRATION_END}: {dict(sorted(distribution.items()))}"
        f"\nwarnings raised during the replay: {len(warnings)} for {len(ever_warned)} customers;"
        f" open at {CALIBRATION_END}: {len(warned)}; by reason:"
        f" {dict(Counter(r for w in warnings for r in w.reasons))}"
        f"\nsilent in the 39 holdout weeks: {len(silent)} of {CUSTOMERS}"
        f" ({len(silent) / CUSTOMERS:.1%})"
        f"\nprecision {precision:.1%} ({len(warned & silent)} of {len(warned)} warned bought"
        f" nothing); recall {recall:.1%} of the silent were warned"
        f"\nin warned stages: {len(eligible)}; silent among the unwarned of them:"
        f" {unwarned_silent:.1%}; recall within warned stages"
        f" {len(warned & silent) / len(eligible & silent):.1%}"
    )
    # Every one of them bought in Q1 1997, so by September nobody is a prospect or new.
    assert distribution["prospect"] == distribution["new"] == 0
    # Warnings must mean something: of the customers who could be warned, the warned ones
    # go silent more often than the others.
    assert precision > unwarned_silent
