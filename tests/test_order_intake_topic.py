"""Shops that name customers by their own identities publish to crm.order-intake, not crm.orders.

profile-service consumes the intake documents (the JSON a shop would POST to /v1/orders), finds
or creates the customer once, accepts each order once and publishes the order.* event with the
CRM customer id on crm.orders, where scoring-service applies it. Documents that cannot be
applied go to crm.order-intake.profile-service.dlq with the reason; the stream flows on.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select

import profile_testing
import scoring_testing
from crm_contracts import OrderPlaced, OrderRefunded, Topic, dead_letter_topic, decode_event
from crm_shared.testing import ApiClient, EmbeddedBroker, read_topic
from scoring_service.db.models import Purchase

pytestmark = pytest.mark.kafka

EMAIL = "shopper@example.com"
WAIT_SECONDS = 180.0  # a bound on waiting for a state, generous for a loaded machine


def a_document(order_id: str, **changes: Any) -> dict[str, Any]:
    """An order as the shop knows it: the customer named by e-mail and its own id."""
    document: dict[str, Any] = {
        "type": "order.placed",
        "order_id": order_id,
        "customer": {"email": EMAIL, "external_id": "shop:4711"},
        "placed_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "total": {"amount": "40.00", "currency": "USD"},
    }
    return document | changes


@pytest.fixture
async def profile_and_scoring(
    tmp_path: Path, kafka_broker: EmbeddedBroker
) -> AsyncIterator[tuple[profile_testing.Api, ApiClient]]:
    kafka = {"kafka_enabled": True, "kafka_bootstrap_servers": kafka_broker.bootstrap_servers}
    async with AsyncExitStack() as stack:
        profile = await stack.enter_async_context(
            profile_testing.running_api(
                profile_testing.app_settings(
                    f"sqlite+aiosqlite:///{tmp_path / 'profile.db'}", **kafka
                )
            )
        )
        scoring = await stack.enter_async_context(
            scoring_testing.running_api(
                scoring_testing.app_settings(
                    f"sqlite+aiosqlite:///{tmp_path / 'scoring.db'}", **kafka
                )
            )
        )
        yield profile, scoring


async def purchases_in_scoring(scoring: ApiClient, expected: int) -> list[Purchase]:
    """Scoring's ledger once it holds `expected` purchases."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while True:
        async with scoring.app.state.runtime.sessions() as session:
            rows = list((await session.scalars(select(Purchase).order_by(Purchase.order_id))).all())
        if len(rows) >= expected:
            return rows
        assert loop.time() < deadline, f"{len(rows)} purchases in scoring, expected {expected}"
        await asyncio.sleep(0.1)


async def test_intake_documents_resolve_the_customer_once_and_reach_scoring_with_the_crm_id(
    profile_and_scoring: tuple[profile_testing.Api, ApiClient], kafka_broker: EmbeddedBroker
) -> None:
    profile, scoring = profile_and_scoring
    first, second = a_document("shop-ord-1"), a_document("shop-ord-2")
    refund = {
        "type": "order.refunded",
        "order_id": "shop-ord-1",
        "refund_id": "shop-ref-1",
        "refunded_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "amount": {"amount": "15.00", "currency": "USD"},
    }
    invalid = [
        b"{not json",
        json.dumps(a_document("shop-ord-3", total={"amount": "40.00", "currency": "EUR"})),
        json.dumps(a_document("shop-ord-4", customer={"first_name": "nobody"})),
        json.dumps(a_document("shop-ord-5", placed_at="9999-12-31T00:00:00Z")),
    ]
    values = [
        json.dumps(first),
        json.dumps(first),  # a repeat: applied once
        *invalid,
        json.dumps(second),
        json.dumps(refund),
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    try:
        for value in values:
            raw = value if isinstance(value, bytes) else value.encode()
            await producer.send_and_wait(Topic.ORDER_INTAKE, raw, key=b"shop:4711")
    finally:
        await producer.stop()

    purchases = await purchases_in_scoring(scoring, 2)

    found = (await profile.get("/v1/customers", params={"email": EMAIL})).json()["items"]
    assert len(found) == 1, found
    customer_id = found[0]["id"]
    assert found[0]["external_ids"] == ["shop:4711"]
    assert [(p.order_id, p.customer_id) for p in purchases] == [
        ("shop-ord-1", customer_id),
        ("shop-ord-2", customer_id),
    ]

    orders = await read_topic(kafka_broker.bootstrap_servers, Topic.ORDERS, expect=3, settle=1.5)
    events = [decode_event(record.value or b"") for record in orders]
    assert {record.key for record in orders} == {customer_id.encode()}
    assert [type(e.data).__name__ for e in events] == [
        "OrderPlaced",
        "OrderPlaced",
        "OrderRefunded",
    ]
    placed = [e.data for e in events if isinstance(e.data, OrderPlaced)]
    assert [o.order_id for o in placed] == ["shop-ord-1", "shop-ord-2"]
    assert all(o.customer_id == customer_id for o in placed)
    refunded = [e.data for e in events if isinstance(e.data, OrderRefunded)]
    assert refunded[0].amount.amount == Decimal("15.00")

    dead = await read_topic(
        kafka_broker.bootstrap_servers,
        dead_letter_topic(Topic.ORDER_INTAKE, "profile-service"),
        expect=len(invalid),
    )
    assert dead_letter_topic(Topic.ORDER_INTAKE, "profile-service") == (
        "crm.order-intake.profile-service.dlq"
    )
    # Undecodable documents are set aside as the batch is read, refused ones as it is applied.
    fields = {record.value: dict(record.headers)["error.field"] for record in dead}
    reasons = {record.value: dict(record.headers)["error"] for record in dead}
    raw_invalid = [v if isinstance(v, bytes) else v.encode() for v in invalid]
    assert [fields[value] for value in raw_invalid] == [
        b"",
        b"total.currency",
        b"order.placed.customer",
        b"order.placed.placed_at",
    ]
    assert all(reasons[value] for value in raw_invalid)
    assert b"accounting currency" in reasons[raw_invalid[1]]
