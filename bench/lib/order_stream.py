"""A steady order stream's effect on the 360, published at a fixed rate beside a measurement.

Only profile-service runs in customer_360_wrk.py, and profile does not read ``crm.orders``:
what an order changes in the 360's tables is what scoring- and lifecycle-service publish
after it. So each "order" here is those two events for one customer (``order_effects``: a
``score.updated`` and a ``lifecycle.stage_changed``), published from a thread of its own
with its own event loop, in ticks of 50 ms, at ``rate`` orders a second, to customers drawn
at random from ``customer_ids``. The profile-service processes consume them (one consumer
group: the partitions are shared out among them) while wrk reads.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer

from crm_contracts import build_event, encode_event
from crm_shared import ensure_topics
from lib.view_events import PARTITIONS, SOURCE, VIEW_TOPICS, order_effects

TICK_SECONDS = 0.05


class OrderStream:
    """Publishes `rate` orders' 360 events a second until stopped (see the module's docstring)."""

    def __init__(self, bootstrap: str, customer_ids: list[str], rate: float, seed: int) -> None:
        self._bootstrap = bootstrap
        self._customer_ids = customer_ids
        self._rate = rate
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="order-stream", daemon=True)
        self._error: BaseException | None = None
        self.orders = 0
        self.seconds = 0.0

    def start(self) -> OrderStream:
        """Start publishing in the background."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop publishing; raises what the publisher failed with, if it did."""
        self._stop.set()
        self._thread.join(timeout=60)
        if self._error is not None:
            raise RuntimeError("the order stream failed") from self._error

    @property
    def achieved_rate(self) -> float:
        """Orders per second actually published."""
        return self.orders / self.seconds if self.seconds else 0.0

    def _run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as error:  # reported by stop(), in the main thread
            self._error = error

    async def _publish(self) -> None:
        await ensure_topics(self._bootstrap, VIEW_TOPICS, partitions=PARTITIONS)
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, linger_ms=5, acks="all")
        await producer.start()
        started = time.perf_counter()
        try:
            while not self._stop.is_set():
                # As many orders as the rate owes by now: a slow tick is caught up, not lost.
                due = int(self._rate * (time.perf_counter() - started)) - self.orders
                sent = []
                for _ in range(max(due, 0)):
                    customer_id = self._rng.choice(self._customer_ids)
                    for payload in order_effects(customer_id, self._rng, datetime.now(UTC)):
                        event = build_event(payload, source=SOURCE, time=datetime.now(UTC))
                        record = encode_event(event)
                        key = event.subject.encode()
                        sent.append(await producer.send(payload.topic, record, key=key))
                    self.orders += 1
                await asyncio.gather(*sent)
                await asyncio.sleep(TICK_SECONDS)
        finally:
            self.seconds = time.perf_counter() - started
            await producer.stop()
