"""pipeline.py's orders and arrivals: the orders of each phase at a target rate, their publishing,
and a consumer that records when each order's chain of events arrived.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiokafka import AIOKafkaProducer

from crm_contracts import Money, OrderLine, OrderPlaced, Topic
from crm_shared import create_consumer, ensure_topics
from lib.orders import YEAR_START, Message, encode_orders, generate_orders

PARTITIONS = 6


SOURCE = "/bench/pipeline"


# The event kinds followed per customer, and how to recognise them in a record's value
# (compact JSON from `encode_event`; a substring test instead of a parse keeps the collector cheap).
KINDS = {
    "score.updated": (Topic.SCORES, (b'"type":"score.updated"',)),
    "stage changed": (Topic.LIFECYCLE, (b'"type":"lifecycle.stage_changed"',)),
    "decision": (
        Topic.NOTIFICATIONS,
        (b'"type":"notification.sent"', b'"type":"notification.suppressed"'),
    ),
}


@dataclass
class ChainArrivals:
    """When this process first received each kind of event for each customer (perf_counter)."""

    first: dict[str, dict[bytes, float]] = field(default_factory=lambda: {k: {} for k in KINDS})
    records: int = 0

    def note(self, topic: str, key: bytes | None, value: bytes | None, now: float) -> None:
        self.records += 1
        if key is None or value is None:
            return
        for kind, (kind_topic, markers) in KINDS.items():
            if topic == kind_topic and any(marker in value for marker in markers):
                self.first[kind].setdefault(key, now)


async def collect(bootstrap: str, arrivals: ChainArrivals, ready: asyncio.Event) -> None:
    """Read the chain's output topics until cancelled, noting first arrivals per customer."""
    await ensure_topics(
        bootstrap, [Topic.SCORES, Topic.LIFECYCLE, Topic.NOTIFICATIONS], partitions=PARTITIONS
    )
    consumer = create_consumer(
        [Topic.SCORES, Topic.LIFECYCLE, Topic.NOTIFICATIONS],
        bootstrap_servers=bootstrap,
        group_id=f"bench-chain-{uuid.uuid4().hex[:12]}",
        client_id="bench-chain",
        session_timeout_ms=6_000,
        rebalance_timeout_ms=2_000,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=50, max_records=5_000)
            if consumer.assignment():
                ready.set()
            now = time.perf_counter()
            for partition, records in batches.items():
                for record in records:
                    arrivals.note(partition.topic, record.key, record.value, now)
    finally:
        await consumer.stop()


def warmup_orders(count: int, customers: int, seed: int, now: datetime) -> list[OrderPlaced]:
    """scoring_consume's year of orders, moved so that the year ends a day before `now`."""
    shift = (now - timedelta(days=366)) - YEAR_START
    return [
        order.model_copy(update={"placed_at": order.placed_at + shift})
        for order in generate_orders(count, customers, seed)
    ]


@dataclass
class PhaseOrders:
    """A phase's orders, ready to publish, and the first orders whose latency is measured."""

    messages: list[Message]
    tracked: list[bytes | None]  # per message: the customer key when it is their first order


def phase_orders(count: int, rate: float, repeat_share: float, rng: random.Random) -> PhaseOrders:
    """`count` orders placed now (spread at `rate`); first orders of new customers, mostly."""
    start = datetime.now(UTC)
    seen: list[str] = []
    orders: list[OrderPlaced] = []
    tracked: list[bytes | None] = []
    for n in range(count):
        if seen and rng.random() < repeat_share:
            customer, first = rng.choice(seen), False
        else:
            customer, first = str(uuid.UUID(int=rng.getrandbits(128), version=4)), True
            seen.append(customer)
        price = Decimal(f"{max(rng.lognormvariate(3.2, 0.8), 1.0):.2f}")
        quantity = rng.choice((1, 1, 2))
        line = OrderLine(
            sku=f"SKU-{rng.randrange(300):05d}",
            name="Product",
            quantity=quantity,
            unit_price=Money(amount=price, currency="USD"),
        )
        placed = start + timedelta(seconds=n / rate) if rate else start
        orders.append(
            OrderPlaced(
                order_id=f"bench-{uuid.uuid4().hex}",
                customer_id=customer,
                placed_at=placed,
                total=Money(amount=price * quantity, currency="USD"),
                items=[line],
                shop_id="shop-eu",
                channel="web",
            )
        )
        tracked.append(customer.encode() if first else None)
    return PhaseOrders(encode_orders(orders), tracked)


async def publish(
    producer: AIOKafkaProducer, orders: PhaseOrders, rate: float
) -> tuple[dict[bytes, float], float]:
    """Publish at `rate` per second (0: as fast as possible); publish times of tracked orders."""
    published: dict[bytes, float] = {}
    sent = []
    started = time.perf_counter()
    for n, (message, customer) in enumerate(zip(orders.messages, orders.tracked, strict=True)):
        if rate:
            delay = started + n / rate - time.perf_counter()
            if delay > 0.002:  # sleep in slices of a few ms, then send what is due
                await asyncio.sleep(delay)
        now = time.perf_counter()
        if customer is not None:
            published[customer] = now
        sent.append(await producer.send(Topic.ORDERS, message.value, key=message.key))
    await asyncio.gather(*sent)
    return published, time.perf_counter() - started
