"""Orders the chain cannot agree on, under real processes on the broker and PostgreSQL.

A shop publishes three orders no service can account for (a foreign currency, a day in the
future, year 9999) and then a good one, for one customer. scoring-, lifecycle- and
notification-service each set the bad three aside on their dead-letter topic with the same
field named, and the good order flows on: the customer's stage moves to `new`, and scoring's
model fit and scores see that order alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from crm_contracts import (
    Money,
    OrderPlaced,
    Topic,
    build_event,
    dead_letter_topic,
    encode_event,
)
from crm_devstack.launcher import Stack, start_stack
from crm_devstack.progress import wait_for_processed, wait_until
from crm_devstack.services import SERVICES
from crm_devstack.wiring import NO_SCHEDULED_JOBS
from crm_shared.testing import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CONSUMERS = ("scoring-service", "lifecycle-service", "notification-service")
CUSTOMER = "e2e-edge-1"
WAIT_SECONDS = 180.0  # a bound on waiting for a state, generous for a loaded machine


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with start_stack(
        data_dir=tmp_path_factory.mktemp("edge-stack"),
        services=[spec for spec in SERVICES if spec.name in CONSUMERS],
        free_ports=True,
        postgres=True,
        extra_env=NO_SCHEDULED_JOBS,
    ) as running:
        yield running


def an_order(order_id: str, placed_at: datetime, currency: str = "USD") -> bytes:
    placed = OrderPlaced(
        order_id=order_id,
        customer_id=CUSTOMER,
        placed_at=placed_at,
        total=Money(amount=Decimal("42.00"), currency=currency),
    )
    return encode_event(build_event(placed, source="/tests/shop", time=placed_at))


def in_year_9999(value: bytes) -> bytes:
    document = json.loads(value)
    document["time"] = document["data"]["placed_at"] = "9999-12-31T23:59:59Z"
    return json.dumps(document).encode()


async def _publish(bootstrap_servers: str, values: Sequence[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(Topic.ORDERS, value, key=CUSTOMER.encode())
    finally:
        await producer.stop()


def test_bad_orders_are_dead_lettered_by_every_service_and_the_good_one_moves_the_stage(
    stack: Stack,
) -> None:
    now = datetime.now(UTC)
    bad = [
        an_order("e2e-eur", now - timedelta(minutes=2), currency="EUR"),
        an_order("e2e-tomorrow", now + timedelta(days=1)),
        in_year_9999(an_order("e2e-9999", now)),
    ]
    good = an_order("e2e-good", now - timedelta(minutes=1))
    asyncio.run(_publish(stack.bootstrap_servers, [*bad, good]))

    key = {"X-API-Key": stack.api_key}
    with httpx.Client(timeout=10, trust_env=False) as client:
        for name in CONSUMERS:
            wait_for_processed(
                client, stack.urls[name], Topic.ORDERS, 4, timeout=WAIT_SECONDS, who=name
            )
        fields = {}
        for name in CONSUMERS:
            dead = asyncio.run(
                read_topic(stack.bootstrap_servers, dead_letter_topic(Topic.ORDERS, name), expect=3)
            )
            assert [record.value for record in dead] == bad, name
            fields[name] = [dict(record.headers)["error.field"].decode() for record in dead]
        assert fields["lifecycle-service"] == ["data.total.currency", "data.placed_at", "time"]
        assert fields["scoring-service"] == fields["lifecycle-service"]
        assert fields["notification-service"] == fields["lifecycle-service"]

        lifecycle = stack.urls["lifecycle-service"]
        stage = wait_until(
            lambda: _json_if_found(
                client.get(f"{lifecycle}/v1/customers/{CUSTOMER}/stage", headers=key)
            ),
            timeout=WAIT_SECONDS,
            what="the good order's stage in lifecycle-service",
        )
        assert stage["stage"] == "new"
        assert stage["order_count"] == 1
        assert [h["stage"] for h in stage["history"]] == ["new"]
        scoring = stack.urls["scoring-service"]
        # Scores come with a fitted model: the fit sees one customer with one order, the good.
        fitted = client.post(
            f"{scoring}/v1/models/fit", json={"as_of": now.isoformat()}, headers=key
        )
        assert fitted.status_code == 201, fitted.text
        assert fitted.json()["customers"] == 1, fitted.json()
        scores = wait_until(
            lambda: _json_if_found(client.get(f"{scoring}/v1/scores/{CUSTOMER}", headers=key)),
            timeout=WAIT_SECONDS,
            what="the good order's scores in scoring-service",
        )
        assert scores["scores"]["order_count"] == 1, scores
        assert Decimal(scores["scores"]["total_spend"]["amount"]) == Decimal("42.00"), scores


def _json_if_found(response: httpx.Response) -> dict[str, Any] | None:
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
