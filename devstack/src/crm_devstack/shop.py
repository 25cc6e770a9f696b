"""A shop backend, as the demo and the cross-service tests play it: orders straight onto Kafka.

Each order is an ``order.placed`` CloudEvent on ``crm.orders``, keyed by the customer id (so a
customer's orders stay in order on one partition) and timed when the order was placed, as a
shop replaying its history would publish them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

from crm_contracts import OrderPlaced, Topic, build_event, encode_event

DEFAULT_SOURCE = "/devstack/shop"


async def publish_orders(
    bootstrap_servers: str, orders: Iterable[OrderPlaced], *, source: str = DEFAULT_SOURCE
) -> int:
    """Publish every order and wait until the broker has them all; return how many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        pending = []
        for order in orders:
            event = build_event(order, source=source, time=order.placed_at)
            key = event.subject.encode()
            pending.append(await producer.send(Topic.ORDERS, encode_event(event), key=key))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return len(pending)


def publish_orders_now(
    bootstrap_servers: str, orders: Iterable[OrderPlaced], *, source: str = DEFAULT_SOURCE
) -> int:
    """`publish_orders` for blocking code (the launcher's callers have no event loop)."""
    return asyncio.run(publish_orders(bootstrap_servers, orders, source=source))
