"""Kafka clients with the settings this system relies on, and topic creation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from crm_shared._kafka_security import PLAINTEXT, KafkaSecurity

_logger = logging.getLogger("crm.kafka")


def create_producer(
    bootstrap_servers: str,
    *,
    client_id: str,
    security: KafkaSecurity = PLAINTEXT,
    max_message_bytes: int = 1024 * 1024,
) -> AIOKafkaProducer:
    """A producer that waits for the broker's acknowledgement of every message.

    No idempotent producer and no transactions: the embedded broker lacks them, and the
    outbox plus the consumers' inbox make delivery effectively-once on any broker.
    `security` (TLS, SASL) is how every client of a service connects, this one and the rest.
    ``max_message_bytes`` should not exceed the broker's ``message.max.bytes``: a record over
    it is then refused here, alone, and the relay parks it, instead of the broker refusing
    the whole partition batch it travels in.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        **security.client_options(),
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        max_batch_size=512 * 1024,
        max_request_size=max_message_bytes,
        request_timeout_ms=15_000,
    )


def create_consumer(
    topics: Iterable[str],
    *,
    bootstrap_servers: str,
    group_id: str,
    client_id: str,
    session_timeout_ms: int = 10_000,
    rebalance_timeout_ms: int = 10_000,
    fetch_max_wait_ms: int = 50,
    security: KafkaSecurity = PLAINTEXT,
) -> AIOKafkaConsumer:
    """A consumer whose offsets are committed by hand, after the database commit.

    The timeouts bound how long a dead member holds its partitions and how long a join
    waits for the others; the embedded broker waits about that long on every join.
    ``fetch_max_wait_ms`` bounds how late a new event is seen (aiokafka's default, 500 ms,
    made each hop of the chain take ~200 ms on the embedded broker).
    """
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        client_id=client_id,
        **security.client_options(),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_uncommitted",
        max_poll_interval_ms=300_000,
        session_timeout_ms=session_timeout_ms,
        rebalance_timeout_ms=rebalance_timeout_ms,
        heartbeat_interval_ms=max(session_timeout_ms // 6, 500),
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


def set_fetch_wait(consumer: AIOKafkaConsumer, wait_ms: int) -> None:
    """Let the broker hold `consumer`'s next Fetch requests up to `wait_ms`.

    aiokafka has no public setter: its fetcher reads this attribute for every request it
    builds, so the change applies from the next one (a request in flight keeps its wait).
    """
    consumer._fetch_max_wait_ms = wait_ms
    fetcher = consumer._fetcher
    if fetcher is not None:
        fetcher._fetch_max_wait_ms = wait_ms


@dataclass
class FetchPacing:
    """A short fetch wait while records flow, a long one once a consumer has been idle.

    The embedded broker spends CPU for as long as it holds an empty Fetch, and a consumer
    asks again as soon as one returns: with the 50 ms wait, an idle consumer cost it 1.2-3.3 ms
    of CPU per request (1 to 30 partitions), up to 20 requests a second (bench/RESULTS.md,
    "Issue 12, Kafka requests per order"). After `idle_after` seconds of empty polls
    the wait becomes `idle_ms`; the first batch with records restores `busy_ms`. The
    price: the first record after a quiet spell may wait up to about half of `idle_ms` more.
    """

    busy_ms: int
    idle_ms: int
    idle_after: float = 1.0
    idle: bool = False
    clock: Callable[[], float] = time.monotonic
    _empty_since: float | None = None  # the first of the empty polls in a row

    def polled(self, consumer: AIOKafkaConsumer, *, records: bool) -> None:
        """Account for one poll of `consumer`; switch its fetch wait when the state changes.

        Idle means polls found nothing for `idle_after` seconds in a row: a long batch
        between two polls (a busy consumer) does not count as a quiet spell.
        """
        if records:
            self._empty_since = None
            if self.idle:
                self.idle = False
                set_fetch_wait(consumer, self.busy_ms)
            return
        now = self.clock()
        if self._empty_since is None:
            self._empty_since = now
        elif not self.idle and now - self._empty_since >= self.idle_after:
            self.idle = True
            set_fetch_wait(consumer, self.idle_ms)


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    partitions: int,
    timeout: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    wanted = sorted(set(topics))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **security.client_options()
    )
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            await admin.start()
            break
        except KafkaError:
            # The broker may still be starting (docker compose, a restarted pod).
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name in wanted
            if name not in existing
        ]
        if missing:
            # Another replica may have created them first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
            _logger.info("created topics", extra={"topics": [t.name for t in missing]})
    finally:
        await admin.close()


async def broker_is_reachable(producer: AIOKafkaProducer, timeout: float = 2.0) -> bool:
    """Ask the broker for metadata; used by ``/readyz``."""
    try:
        await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
    except Exception:
        return False
    return True
