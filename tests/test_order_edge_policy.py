"""Every consumer of crm.orders judges an order alike: the same bad orders dead-lettered by all.

scoring-, lifecycle- and notification-service read the same stream on one real broker. An order
dated in year 9999, one in a foreign currency and one a day in the future go to each service's
dead-letter topic with the same field named, and the good order published after them is applied
by all three: one bad order neither splits the services' view nor stops the flow.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

import lifecycle_testing
import notification_testing
import scoring_testing
from crm_contracts import (
    CloudEvent,
    Money,
    OrderPlaced,
    Topic,
    build_event,
    dead_letter_topic,
    encode_event,
)
from crm_shared.testing import ApiClient, EmbeddedBroker, read_topic
from lifecycle_service.db.models import LifecycleOrder
from scoring_service.db.models import Purchase

pytestmark = pytest.mark.kafka

CUSTOMER = "edge-customer-1"
WAIT_SECONDS = 180.0  # a bound on waiting for a state, generous for a loaded machine


def an_order(order_id: str, placed_at: datetime, currency: str = "USD") -> CloudEvent:
    placed = OrderPlaced(
        order_id=order_id,
        customer_id=CUSTOMER,
        placed_at=placed_at,
        total=Money(amount=Decimal("25.00"), currency=currency),
    )
    return build_event(placed, source="/tests/shop", time=placed_at)


def in_year_9999(event: CloudEvent) -> bytes:
    """The event with its times moved to 9999 (as a shop's bug or an attacker would send it)."""
    document = json.loads(encode_event(event))
    document["time"] = document["data"]["placed_at"] = "9999-12-31T00:00:00Z"
    return json.dumps(document).encode()


@pytest.fixture
async def consumers(
    tmp_path: Path, kafka_broker: EmbeddedBroker
) -> AsyncIterator[dict[str, ApiClient]]:
    """scoring-, lifecycle- and notification-service, each on its own database, on one broker."""
    kafka = {"kafka_enabled": True, "kafka_bootstrap_servers": kafka_broker.bootstrap_servers}
    async with AsyncExitStack() as stack:
        running = {
            "scoring-service": await stack.enter_async_context(
                scoring_testing.running_api(
                    scoring_testing.app_settings(
                        f"sqlite+aiosqlite:///{tmp_path / 'scoring.db'}", **kafka
                    )
                )
            ),
            "lifecycle-service": await stack.enter_async_context(
                lifecycle_testing.running_api(
                    lifecycle_testing.app_settings(
                        f"sqlite+aiosqlite:///{tmp_path / 'lifecycle.db'}", **kafka
                    )
                )
            ),
            "notification-service": await stack.enter_async_context(
                notification_testing.running_api(
                    notification_testing.app_settings(
                        f"sqlite+aiosqlite:///{tmp_path / 'notification.db'}", **kafka
                    )
                )
            ),
        }
        yield running


async def orders_applied(api: ApiClient) -> int:
    """How many crm.orders events the service applied, from its own /metrics."""
    text = (await api.client.get("/metrics")).text
    return int(
        sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "events_processed_total"
            and sample.labels == {"topic": Topic.ORDERS.value, "outcome": "applied"}
        )
    )


async def wait_until_applied(api: ApiClient, expected: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while (applied := await orders_applied(api)) < expected:
        assert loop.time() < deadline, f"{applied} orders applied, expected {expected}"
        await asyncio.sleep(0.1)


async def test_bad_orders_are_dead_lettered_by_every_consumer_alike_and_the_flow_moves_on(
    consumers: dict[str, ApiClient], kafka_broker: EmbeddedBroker
) -> None:
    now = datetime.now(UTC)
    good = an_order("ord-good", now - timedelta(minutes=1))
    bad = [
        in_year_9999(an_order("ord-9999", now)),
        encode_event(an_order("ord-eur", now - timedelta(minutes=1), currency="EUR")),
        encode_event(an_order("ord-tomorrow", now + timedelta(days=1))),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    try:
        # One key, one partition: the good order comes after the bad ones in every reader's view.
        for value in [*bad, encode_event(good)]:
            await producer.send_and_wait(Topic.ORDERS, value, key=CUSTOMER.encode())
    finally:
        await producer.stop()

    fields_by_service = {}
    for name, api in consumers.items():
        await wait_until_applied(api, 1)
        dead = await read_topic(
            kafka_broker.bootstrap_servers, dead_letter_topic(Topic.ORDERS, name), expect=3
        )
        assert [record.value for record in dead] == bad, name
        fields_by_service[name] = [dict(record.headers)["error.field"] for record in dead]
    assert fields_by_service["scoring-service"] == [
        b"time",
        b"data.total.currency",
        b"data.placed_at",
    ]
    assert len(set(map(tuple, fields_by_service.values()))) == 1, fields_by_service

    # Only the good order is in the ledgers: nothing of 9999 moved anyone's scores or stage.
    async with consumers["scoring-service"].app.state.runtime.sessions() as session:
        purchases = (await session.scalars(select(Purchase.order_id))).all()
    assert purchases == ["ord-good"]
    async with consumers["lifecycle-service"].app.state.runtime.sessions() as session:
        orders = (await session.scalars(select(LifecycleOrder.order_id))).all()
    assert orders == ["ord-good"]
    stage = (await consumers["lifecycle-service"].get(f"/v1/customers/{CUSTOMER}/stage")).json()
    assert stage["stage"] == "new"
