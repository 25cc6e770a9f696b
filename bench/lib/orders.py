"""Generated order.placed events for the consume benchmarks, their publishing, and a bare aiokafka
consumer reading the same topic as the ceiling.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer

from crm_contracts import Money, OrderLine, OrderPlaced, Topic, build_event, encode_event
from crm_shared import create_consumer, ensure_topics

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)


YEAR_SECONDS = 365 * 86_400


@dataclass(frozen=True)
class Message:
    """One Kafka record to publish: key = customer id, value = the encoded CloudEvent."""

    key: bytes
    value: bytes
    time: datetime


def _catalogue(rng: random.Random, size: int = 300) -> list[tuple[str, str, Decimal]]:
    products = []
    for n in range(size):
        price = Decimal(f"{max(rng.lognormvariate(3.2, 0.8), 1.0):.2f}")
        products.append((f"SKU-{n:05d}", f"Product {n}", price))
    return products


def generate_orders(events: int, customers: int, seed: int) -> list[OrderPlaced]:
    """`events` orders of `customers` customers over one year, sorted by time.

    Each customer is acquired at a uniform moment of the year (their first order, when there
    are at least as many events as customers) and buys again at a Gamma-distributed rate
    until the year ends, so late customers have fewer repeat orders and a few heavy buyers
    have many.
    """
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(customers)]
    acquired = [rng.uniform(0, YEAR_SECONDS * 0.97) for _ in range(customers)]
    rates = [rng.gammavariate(0.6, 1.0) for _ in range(customers)]
    buyers = min(events, customers)
    counts = [1 if i < buyers else 0 for i in range(customers)]
    weights = [rate * (YEAR_SECONDS - start) for rate, start in zip(rates, acquired, strict=True)]
    for i in rng.choices(range(customers), weights=weights, k=events - buyers):
        counts[i] += 1
    moments: list[tuple[float, int]] = []
    for i, count in enumerate(counts):
        if count:
            moments.append((acquired[i], i))
            moments.extend((rng.uniform(acquired[i], YEAR_SECONDS), i) for _ in range(count - 1))
    moments.sort()
    products = _catalogue(rng)
    orders = []
    for n, (offset, i) in enumerate(moments, start=1):
        lines = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            sku, name, price = rng.choice(products)
            quantity = rng.choice((1, 1, 1, 2, 3))
            lines.append(
                OrderLine(
                    sku=sku,
                    name=name,
                    quantity=quantity,
                    unit_price=Money(amount=price, currency="USD"),
                )
            )
        total = sum((line.unit_price.amount * line.quantity for line in lines), Decimal(0))
        orders.append(
            OrderPlaced(
                order_id=f"ord-{n:07d}",
                customer_id=ids[i],
                placed_at=YEAR_START + timedelta(seconds=int(offset)),
                total=Money(amount=total, currency="USD"),
                items=lines,
                shop_id=rng.choice(("shop-eu", "shop-us")),
                channel=rng.choice(("web", "web", "app", "store")),
            )
        )
    return orders


def encode_orders(orders: Sequence[OrderPlaced]) -> list[Message]:
    """The orders as `order.placed` CloudEvents with the order's time, ready to publish."""
    messages = []
    for order in orders:
        event = build_event(order, source=SOURCE, time=order.placed_at)
        messages.append(Message(event.subject.encode(), encode_event(event), order.placed_at))
    return messages


async def publish(bootstrap: str, messages: Sequence[Message]) -> float:
    """Publish to `crm.orders` (created with the service's partition count); seconds taken."""
    await ensure_topics(bootstrap, [Topic.ORDERS], partitions=PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="bench-shop",
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks="all",
    )
    started = time.perf_counter()
    await producer.start()
    try:
        sent = [await producer.send(Topic.ORDERS, m.value, key=m.key) for m in messages]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.perf_counter() - started


@dataclass(frozen=True)
class BareResult:
    """What a do-nothing consumer in a fresh group read, and how fast."""

    events: int
    join_seconds: float  # start() until the first records arrived
    seconds: float  # start() until the last record arrived
    steady_rate: float  # records after the first batch / time from first to last batch


async def bare_consume(bootstrap: str, expected: int, timeout: float) -> BareResult:
    """Read `expected` records of `crm.orders` with the service's consumer settings."""
    consumer = create_consumer(
        [Topic.ORDERS],
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:12]}",
        client_id="bench-bare",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
    )
    started = time.perf_counter()
    await consumer.start()
    count = first_count = 0
    first_at: float | None = None
    last_at = started
    try:
        while count < expected and time.perf_counter() - started < timeout:
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH_SIZE)
            got = sum(len(records) for records in batches.values())
            if not got:
                continue
            last_at = time.perf_counter()
            if first_at is None:
                first_at, first_count = last_at, got
            count += got
    finally:
        await consumer.stop()
    if first_at is None:
        return BareResult(0, timeout, timeout, 0.0)
    steady = last_at - first_at
    return BareResult(
        events=count,
        join_seconds=first_at - started,
        seconds=last_at - started,
        steady_rate=(count - first_count) / steady if steady > 0 else 0.0,
    )


SOURCE = "/bench/shop"


PARTITIONS = 6  # ServiceSettings.kafka_topic_partitions' default: what the service would create


BATCH_SIZE = 500  # ServiceSettings.kafka_consumer_batch_size' default


SESSION_TIMEOUT_MS = 6_000


REBALANCE_TIMEOUT_MS = 2_000
