"""lifecycle-service on the real broker: consumed stream, dead letters, two replicas, one sweep."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from crm_contracts import CloudEvent, Topic, dead_letter_topic, encode_event
from crm_shared import Scope
from crm_shared.testing import ApiClient, EmbeddedBroker, read_topic
from lifecycle_service.db.models import LifecycleOrder, StageTransition, SweepRun
from lifecycle_service.settings import LifecycleSettings
from lifecycle_testing import app_settings, order, running_api

pytestmark = pytest.mark.kafka
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def broker_settings(database_url: str, broker: EmbeddedBroker, group: str) -> LifecycleSettings:
    return app_settings(
        database_url,
        kafka_enabled=True,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        service_name=group,
    )


async def publish(broker: EmbeddedBroker, records: Sequence[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=10)
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


def as_record(event: CloudEvent) -> tuple[str, bytes, bytes]:
    return (str(event.data.topic), event.subject.encode(), encode_event(event))


async def wait_for_orders(api: ApiClient, prefix: str, expected: int) -> None:
    sessions = api.app.state.runtime.sessions
    count = 0
    for _ in range(600):
        async with sessions() as session:
            count = await session.scalar(
                select(func.count())
                .select_from(LifecycleOrder)
                .where(LifecycleOrder.customer_id.startswith(prefix))
            )
        if count == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} orders applied, expected {expected}")


@pytest.fixture
async def lifecycle_with_broker(
    tmp_path: Path, kafka_broker: EmbeddedBroker
) -> AsyncIterator[ApiClient]:
    settings = broker_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'lifecycle.db'}",
        kafka_broker,
        f"lifecycle-{uuid.uuid4().hex[:10]}",
    )
    async with running_api(settings) as running:
        yield running


async def test_the_order_stream_moves_stages_and_bad_events_go_to_the_dead_letter_topic(
    lifecycle_with_broker: ApiClient, kafka_broker: EmbeddedBroker
):
    api = lifecycle_with_broker
    prefix = f"b-{uuid.uuid4().hex[:8]}-"
    first, again = (
        order(f"{prefix}1", f"{prefix}o1", day(0)),
        order(f"{prefix}1", f"{prefix}o2", day(200)),
    )
    malformed_order = json.loads(encode_event(order(f"{prefix}2", f"{prefix}o3", day(1))))
    malformed_order["data"]["total"] = {"amount": "lots", "currency": "USD"}
    await publish(
        kafka_broker,
        [
            as_record(first),
            as_record(first),  # redelivered: applied once
            (Topic.ORDERS.value, f"{prefix}2".encode(), b"{not json"),
            (Topic.ORDERS.value, f"{prefix}2".encode(), json.dumps(malformed_order).encode()),
            as_record(again),
        ],
    )
    await wait_for_orders(api, prefix, 2)

    stage = (await api.get(f"/v1/customers/{prefix}1/stage")).json()
    assert [h["stage"] for h in stage["history"]] == ["new", "active"]
    assert [h["cause"] for h in stage["history"]] == [first.id, again.id]
    group = api.app.state.settings.service_name
    dead = await read_topic(
        kafka_broker.bootstrap_servers, dead_letter_topic(Topic.ORDERS, group), expect=2
    )
    assert len(dead) == 2
    reasons = [dict(record.headers) for record in dead]
    assert all(headers["error"] for headers in reasons)
    assert [headers["error.field"] for headers in reasons] == [b"", b"data.total.amount"]
    published = await read_topic(kafka_broker.bootstrap_servers, Topic.LIFECYCLE, expect=1)
    ours = [r for r in published if r.key == f"{prefix}1".encode()]
    assert [json.loads(r.value)["data"]["stage"] for r in ours] == ["new", "active"]


async def test_two_replicas_share_the_stream_and_one_sweeps_at_a_time(
    postgres_url: str, kafka_broker: EmbeddedBroker
):
    group = f"lifecycle-{uuid.uuid4().hex[:10]}"
    prefix = f"r-{uuid.uuid4().hex[:8]}-"
    customers = 120
    async with AsyncExitStack() as stack:
        replicas = [
            await stack.enter_async_context(
                running_api(broker_settings(postgres_url, kafka_broker, group))
            )
            for _ in range(2)
        ]
        # Each customer: a first order, then another 200 days later (new -> active).
        await publish(
            kafka_broker,
            [
                as_record(order(f"{prefix}{n}", f"{prefix}{n}-{k}", day(k * 200 + n / 10)))
                for k in range(2)
                for n in range(customers)
            ],
        )
        await wait_for_orders(replicas[0], prefix, 2 * customers)
        for replica in replicas:  # both consumers really took part
            applied = replica.app.state.runtime.metrics.events_processed.labels(
                Topic.ORDERS.value, "applied"
            )._value.get()
            assert applied > 0

        responses = await asyncio.gather(
            *(
                replica.post("/v1/sweeps", Scope.ADMIN, json={"as_of": day(320).isoformat()})
                for replica in replicas
            )
        )
        assert {r.status_code for r in responses} <= {201, 409}
        assert 201 in {r.status_code for r in responses}
        again = await replicas[1].post(
            "/v1/sweeps", Scope.ADMIN, json={"as_of": day(320).isoformat()}
        )
        assert again.json()["moved"] == 0

        async with replicas[0].app.state.runtime.sessions() as session:
            moves = Counter(
                (row.customer_id, row.previous_stage, row.stage)
                for row in await session.execute(
                    select(StageTransition).where(StageTransition.customer_id.startswith(prefix))
                )
                for row in [row[0]]
            )
            runs = list(await session.scalars(select(SweepRun).order_by(SweepRun.started_at)))
    # Every transition exactly once: none lost, none applied twice.
    assert set(moves.values()) == {1}
    assert Counter((source, target) for _, source, target in moves) == {
        (None, "new"): customers,
        ("new", "active"): customers,
        ("active", "at_risk"): customers,
    }
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished_at <= later.started_at  # sweeps never overlapped
