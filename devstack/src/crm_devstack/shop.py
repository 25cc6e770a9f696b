"""A shop backend, as the demo and the cross-service tests play it: orders straight onto Kafka.

Each order is an ``order.placed`` CloudEvent on ``crm.orders``, keyed by the customer id (so a
customer's orders stay in order on one partition) and timed when the order was placed, as a
shop replaying its history would publish them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TypeVar

from aiokafka import AIOKafkaProducer

from crm_contracts import EventPayload, OrderPlaced, build_event, encode_event

DEFAULT_SOURCE = "/devstack/shop"
P = TypeVar("P", bound=EventPayload)


async def publish_orders(
    bootstrap_servers: str, orders: Iterable[OrderPlaced], *, source: str = DEFAULT_SOURCE
) -> int:
    """Publish every order and wait until the broker has them all; return how many."""
    return await publish_payloads(
        bootstrap_servers, orders, time_of=lambda order: order.placed_at, source=source
    )


async def publish_payloads(
    bootstrap_servers: str,
    payloads: Iterable[P],
    *,
    time_of: Callable[[P], datetime],
    source: str = DEFAULT_SOURCE,
) -> int:
    """Publish each payload on its topic as a CloudEvent timed by `time_of`, keyed by its
    customer; wait until the broker has them all and return how many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        pending = []
        for payload in payloads:
            event = build_event(payload, source=source, time=time_of(payload))
            key = event.subject.encode()
            pending.append(await producer.send(payload.topic, encode_event(event), key=key))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(pending)


def publish_orders_now(
    bootstrap_servers: str, orders: Iterable[OrderPlaced], *, source: str = DEFAULT_SOURCE
) -> int:
    """`publish_orders` for blocking code (the launcher's callers have no event loop)."""
    return asyncio.run(publish_orders(bootstrap_servers, orders, source=source))
