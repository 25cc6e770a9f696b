"""The relay sets aside a row the broker can never take, and keeps the rows behind it flowing.

Issue 11, item 1: one event over the size limit made the relay retry forever, every later event
of the service stayed in the outbox, ``/readyz`` said ready and the outbox gauge read 0. Here the
size limit is the real producer's (aiokafka refuses a record over ``max_request_size`` with
``MessageSizeTooLargeError``), against the real embedded broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownError,
    UnknownTopicOrPartitionError,
)
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_contracts import (
    CloudEvent,
    CustomerSnapshot,
    CustomerUpdated,
    Topic,
    build_event,
    decode_event,
)
from crm_shared import (
    OutboxRelay,
    ServiceMetrics,
    add_to_outbox,
    create_engine,
    create_producer,
    create_session_factory,
    new_metadata,
    plumbing_tables,
)
from crm_shared._outbox_delivery import is_unpublishable
from crm_shared._outbox_health import outbox_readiness
from crm_shared.testing import EmbeddedBroker, read_topic

pytestmark = pytest.mark.kafka

METADATA = new_metadata()
TABLES = plumbing_tables(METADATA)
START = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PRODUCER_LIMIT = 4096
SECRET_EMAIL = "private.person@example.com"


def customer_update(customer_id: str, n: int, *, note_bytes: int = 0) -> CloudEvent:
    """A customer.updated event; `note_bytes` of attribute text make it as large as wanted."""
    notes = {f"note{k}": "x" * 1_000 for k in range(note_bytes // 1_000)}
    snapshot = CustomerSnapshot(
        customer_id=customer_id,
        email=SECRET_EMAIL,
        attributes={"n": n, **notes},
        created_at=START,
        updated_at=START + timedelta(minutes=n),
    )
    return build_event(
        CustomerUpdated(customer=snapshot, changed_fields=["attributes"]),
        source="/tests",
        time=START + timedelta(minutes=n),
    )


class Outbox:
    """A database holding the plumbing tables, and a relay over it."""

    def __init__(self, engine: AsyncEngine, producer: AIOKafkaProducer) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = create_session_factory(engine)
        self.metrics = ServiceMetrics()
        self.relay = OutboxRelay(
            name="test-relay",
            engine=engine,
            session_factory=self.sessions,
            tables=TABLES,
            producer=producer,
            metrics=self.metrics,
            poll_interval=0.05,
        )

    async def stage(self, events: Sequence[CloudEvent]) -> None:
        async with self.sessions() as session, session.begin():
            for event in events:
                await add_to_outbox(session, TABLES, event)

    async def rows(self) -> dict[str, Any]:
        outbox = TABLES.outbox
        async with self.sessions() as session:
            result = await session.execute(
                select(
                    outbox.c.event_id, outbox.c.sent_at, outbox.c.parked_at, outbox.c.park_reason
                )
            )
            return {row.event_id: row for row in result}

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def producer(kafka_broker: EmbeddedBroker) -> AsyncIterator[AIOKafkaProducer]:
    kafka_producer = create_producer(
        kafka_broker.bootstrap_servers, client_id="tests", max_message_bytes=PRODUCER_LIMIT
    )
    await kafka_producer.start()
    yield kafka_producer
    await kafka_producer.stop()


@pytest.fixture
async def outbox(database_url: str, producer: AIOKafkaProducer) -> AsyncIterator[Outbox]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    yield Outbox(engine, producer)
    await engine.dispose()


async def wait_for(
    condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 60
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def published_ids(records: Sequence[Any], key: str) -> list[str]:
    return [decode_event(r.value).id for r in records if r.key == key.encode()]


async def test_a_row_the_producer_can_never_send_is_parked_and_the_rows_behind_it_flow_in_order(
    kafka_broker: EmbeddedBroker, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    before = customer_update("c-1", 1)
    too_large = customer_update("c-1", 2, note_bytes=3 * PRODUCER_LIMIT)
    after = [customer_update("c-1", 3), customer_update("c-1", 4)]
    other = customer_update("c-2", 5)
    await outbox.stage([before, too_large, *after, other])

    with caplog.at_level(logging.ERROR, logger="crm.outbox"):
        assert await outbox.relay.publish_pending() == 5
    assert await outbox.relay.publish_pending() == 0  # a parked row is not tried again

    records = await read_topic(kafka_broker.bootstrap_servers, Topic.CUSTOMERS, expect=4)
    assert published_ids(records, "c-1") == [before.id, after[0].id, after[1].id]
    assert published_ids(records, "c-2") == [other.id]
    rows = await outbox.rows()
    assert rows[too_large.id].sent_at is None
    assert rows[too_large.id].parked_at is not None
    assert rows[too_large.id].park_reason.startswith("MessageSizeTooLargeError")
    assert rows.keys() == {too_large.id}  # the published rows are gone from the outbox

    assert outbox.metric("outbox_parked_total", topic=Topic.CUSTOMERS) == 1
    assert outbox.metric("outbox_published_total", topic=Topic.CUSTOMERS) == 4
    backlog = await outbox.relay.refresh_gauges()
    assert backlog.parked == 1
    assert backlog.oldest_unsent_at is None
    assert outbox.metric("outbox_parked_rows") == 1
    assert outbox.metric("outbox_pending") == 0

    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert logged.__dict__["event_id"] == too_large.id
    assert logged.__dict__["topic"] == Topic.CUSTOMERS
    assert logged.__dict__["size_bytes"] > PRODUCER_LIMIT
    assert "MessageSizeTooLargeError" in logged.__dict__["reason"]
    assert SECRET_EMAIL not in repr(logged.__dict__)

    # Parked rows need an operator, not a restart: readiness reports them but stays ready.
    readiness = await outbox_readiness(
        outbox.sessions, TABLES.outbox, stuck_after=timedelta(seconds=120)
    )
    assert readiness.ready
    assert readiness.details["parked"] == 1


async def test_a_broker_outage_blocks_the_rows_in_order_and_readiness_and_gauges_say_so(
    database_url: str, kafka_broker: EmbeddedBroker
) -> None:
    # A short request timeout, so each attempt against the stopped broker fails quickly.
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        acks="all",
        request_timeout_ms=1_500,
        retry_backoff_ms=100,
    )
    await producer.start()
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    outbox = Outbox(engine, producer)
    relay_task = asyncio.create_task(outbox.relay.run())
    events = [customer_update("c-9", n) for n in range(3)]
    try:
        kafka_broker.stop()
        await outbox.stage(events)
        # Make them look old, as after a long outage.
        async with outbox.sessions() as session, session.begin():
            await session.execute(
                update(TABLES.outbox).values(created_at=datetime.now(UTC) - timedelta(minutes=10))
            )

        async def gauge_shows_backlog() -> bool:
            return outbox.metric("outbox_pending") == 3

        await wait_for(gauge_shows_backlog, "the pending gauge to count the waiting rows")
        assert outbox.metric("outbox_oldest_unsent_age_seconds") >= 600
        stuck = await outbox_readiness(
            outbox.sessions, TABLES.outbox, stuck_after=timedelta(seconds=120)
        )
        assert not stuck.ready
        assert stuck.details["parked"] == 0
        assert stuck.details["oldest_unsent_age_seconds"] >= 600
        assert all(row.parked_at is None for row in (await outbox.rows()).values())

        kafka_broker.start()  # same port, empty: the relay retries and gets through in order

        async def all_sent() -> bool:
            return not await outbox.rows()  # a published row is deleted

        await wait_for(all_sent, "the waiting rows to be published after the outage")
        records = await read_topic(kafka_broker.bootstrap_servers, Topic.CUSTOMERS, expect=3)
        assert published_ids(records, "c-9") == [event.id for event in events]
        flowing = await outbox_readiness(
            outbox.sessions, TABLES.outbox, stuck_after=timedelta(seconds=120)
        )
        assert flowing.ready
    finally:
        outbox.relay.stop()
        await asyncio.wait_for(relay_task, 30)
        await producer.stop()
        await engine.dispose()


@pytest.mark.parametrize(
    "error",
    [MessageSizeTooLargeError(), RecordListTooLargeError(), InvalidTopicError()],
    ids=type,
)
def test_errors_about_the_record_itself_are_permanent(error: Exception) -> None:
    assert is_unpublishable(error)


@pytest.mark.parametrize(
    "error",
    [
        UnknownTopicOrPartitionError(),  # the topic may yet be created
        KafkaTimeoutError(),
        KafkaConnectionError(),
        TopicAuthorizationFailedError(),  # an operator can grant it
        UnknownError(),  # aiokafka's name for codes it does not know
        RuntimeError("anything else"),
    ],
    ids=type,
)
def test_errors_that_may_heal_are_not_permanent(error: Exception) -> None:
    assert not is_unpublishable(error)
