"""The outbox relay and the consumer loop against the real broker, on SQLite and PostgreSQL; and
the requests the broker pays for (the fetch wait while idle, throttled offset commits)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from sqlalchemy import Column, Integer, String, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_contracts import (
    ActivityRecorded,
    CloudEvent,
    build_event,
    dead_letter_topic,
    decode_event,
    encode_event,
)
from crm_shared import (
    Decoder,
    EventConsumer,
    OutboxRelay,
    PlumbingTables,
    ServiceMetrics,
    add_encoded_to_outbox,
    add_to_outbox,
    create_consumer,
    create_engine,
    create_producer,
    create_session_factory,
    ensure_topics,
    new_metadata,
    plumbing_tables,
)
from crm_shared._consumer import decode_cloud_event
from crm_shared._kafka import FetchPacing, set_fetch_wait
from crm_shared._outbox_delivery import deliver
from crm_shared._sequences import PRODUCER_HEADER
from crm_shared.testing import EmbeddedBroker, read_topic

pytestmark = pytest.mark.kafka

METADATA = new_metadata()
TABLES = plumbing_tables(METADATA)
EFFECTS = Table(
    "effects",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
)
START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def an_activity(customer_id: str = "c-1", n: int = 0) -> CloudEvent:
    """An activity event, the smallest payload with a customer."""
    return build_event(
        ActivityRecorded(
            customer_id=customer_id,
            activity_id=f"a-{n}",
            activity_type="page_view",
            occurred_at=START + timedelta(minutes=n),
        ),
        source="/tests",
        time=START + timedelta(minutes=n),
    )


class Store:
    """A test database with the plumbing tables and an effects table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = create_session_factory(engine)

    async def effect_count(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(EFFECTS)) or 0)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    yield Store(engine)
    await engine.dispose()


@pytest.fixture
async def producer(kafka_broker: EmbeddedBroker) -> AsyncIterator[AIOKafkaProducer]:
    kafka_producer = create_producer(kafka_broker.bootstrap_servers, client_id="tests")
    await kafka_producer.start()
    yield kafka_producer
    await kafka_producer.stop()


async def record_effects(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """The batch handler under test: one row per applied event."""
    await session.execute(insert(EFFECTS), [{"event_id": event.id} for event in events])


class SimulatedCrash(Exception):
    """Raised between the database commit and the offset commit."""


async def fresh_topic(broker: EmbeddedBroker, group: str) -> str:
    topic = f"test.{uuid.uuid4().hex[:12]}"
    await ensure_topics(
        broker.bootstrap_servers, [topic, dead_letter_topic(topic, group)], partitions=2
    )
    return topic


async def twenty_activities_published(producer: AIOKafkaProducer, topic: str) -> list[CloudEvent]:
    """Twenty activities of three customers, published to `topic` in order."""
    events = [an_activity(f"c-{n % 3}", n) for n in range(20)]
    for event in events:
        await producer.send_and_wait(topic, encode_event(event), key=event.subject.encode())
    return events


def consumer_for(
    broker: EmbeddedBroker,
    topic: str,
    group: str,
    store: Store,
    producer: AIOKafkaProducer,
    *,
    after_store: Callable[[Sequence[CloudEvent]], Awaitable[None]] | None = None,
    batch_size: int = 500,
    decode: Decoder[CloudEvent] | None = None,
) -> EventConsumer:
    return EventConsumer(
        name="test-consumer",
        topics=[topic],
        consumer=create_consumer(
            [],  # EventConsumer.start subscribes, seeking to the stored offsets
            bootstrap_servers=broker.bootstrap_servers,
            group_id=group,
            client_id=group,
            session_timeout_ms=6_000,
            rebalance_timeout_ms=2_000,
        ),
        producer=producer,
        session_factory=store.sessions,
        tables=TABLES,
        apply_batch=record_effects,
        metrics=ServiceMetrics(),
        after_store=after_store,
        batch_size=batch_size,
        decode=decode,
    )


async def run_until(
    consumer: EventConsumer, condition: Callable[[], Awaitable[bool]], timeout: float = 30
) -> None:
    """Run the consumer loop until `condition` holds, then stop it cleanly."""
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await condition():
            if task.done():
                task.result()
            assert asyncio.get_running_loop().time() < deadline, "condition not reached"
            await asyncio.sleep(0.05)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
        await consumer._consumer.stop()


async def test_effects_and_offsets_commit_together_so_a_crash_before_kafka_commit_repeats_nothing(
    kafka_broker: EmbeddedBroker, store: Store, producer: AIOKafkaProducer
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    topic = await fresh_topic(kafka_broker, group)
    events = await twenty_activities_published(producer, topic)

    async def crash(_: Sequence[CloudEvent]) -> None:
        raise SimulatedCrash  # after the database commit, before the offsets reach Kafka

    crashing = consumer_for(
        kafka_broker, topic, group, store, producer, after_store=crash, batch_size=5
    )
    await crashing.start()
    with pytest.raises(SimulatedCrash):
        await crashing.run()
    await crashing._consumer.stop()  # leaves the group without committing offsets
    async with store.sessions() as session:
        applied_first = set((await session.scalars(select(EFFECTS.c.event_id))).all())
        offsets = (
            await session.execute(
                select(TABLES.consumer_offsets.c.partition, TABLES.consumer_offsets.c.next_offset)
            )
        ).all()
    assert 0 < len(applied_first) < len(events)
    # Effects and offsets in one transaction: the stored offsets cover exactly the records
    # whose effects are stored.
    assert sum(next_offset for _, next_offset in offsets) == len(applied_first)
    assert await broker_committed(kafka_broker, group, topic) == {}

    # The restarted consumer seeks to the stored offsets; records it fetched before the seek
    # (or that a rebalance hands it again) are skipped by the transaction that would apply them.
    restarted = consumer_for(kafka_broker, topic, group, store, producer)

    async def all_applied() -> bool:
        return await store.effect_count() >= len(events)

    await run_until(restarted, all_applied)
    assert await store.effect_count() == len(events)
    async with store.sessions() as session:
        applied = (await session.scalars(select(EFFECTS.c.event_id))).all()
    assert sorted(applied) == sorted(event.id for event in events)


async def test_a_loop_that_fails_mid_batch_reads_that_batch_again_when_resumed(
    kafka_broker: EmbeddedBroker, store: Store, producer: AIOKafkaProducer
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    topic = await fresh_topic(kafka_broker, group)
    events = await twenty_activities_published(producer, topic)
    bugs = [RuntimeError("a decoder bug")]

    def decode_failing_once(record: ConsumerRecord[bytes, bytes]) -> CloudEvent:
        if bugs:
            raise bugs.pop()
        return decode_cloud_event(record)

    consumer = consumer_for(
        kafka_broker, topic, group, store, producer, batch_size=5, decode=decode_failing_once
    )
    await consumer.start()
    try:
        with pytest.raises(RuntimeError):
            await consumer.run()
        # Resumed on the same Kafka consumer, as the runtime's supervisor does: the batch in
        # hand when the loop failed is read again, not skipped.
        task = asyncio.create_task(consumer.run())
        deadline = asyncio.get_running_loop().time() + 60
        while await store.effect_count() < len(events):
            assert not task.done(), task
            assert asyncio.get_running_loop().time() < deadline, "not every event applied"
            await asyncio.sleep(0.05)
        consumer.stop()
        await asyncio.wait_for(task, 10)
    finally:
        await consumer._consumer.stop()
    async with store.sessions() as session:
        applied = (await session.scalars(select(EFFECTS.c.event_id))).all()
    assert sorted(applied) == sorted(event.id for event in events)


async def broker_committed(broker: EmbeddedBroker, group: str, topic: str) -> dict[int, int]:
    """The offsets the broker holds for `group` on `topic`'s two partitions."""
    reader = create_consumer(
        [], bootstrap_servers=broker.bootstrap_servers, group_id=group, client_id="peek"
    )
    await reader.start()
    try:
        committed = {}
        for partition in range(2):
            offset = await reader.committed(TopicPartition(topic, partition))
            if offset is not None:
                committed[partition] = offset
        return committed
    finally:
        await reader.stop()


async def test_malformed_events_are_dead_lettered_and_the_stream_flows_on(
    kafka_broker: EmbeddedBroker, store: Store, producer: AIOKafkaProducer
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    topic = await fresh_topic(kafka_broker, group)
    good_before, good_after = an_activity("c-1", 1), an_activity("c-1", 2)
    wrong_shape = encode_event(an_activity("c-1", 3)).replace(b'"page_view"', b"42")
    for value in (encode_event(good_before), b"{not json", wrong_shape, encode_event(good_after)):
        await producer.send_and_wait(topic, value, key=b"c-1")

    consumer = consumer_for(kafka_broker, topic, group, store, producer)

    async def both_good_applied() -> bool:
        return await store.effect_count() == 2

    await run_until(consumer, both_good_applied)
    dead = await read_topic(
        kafka_broker.bootstrap_servers, dead_letter_topic(topic, group), expect=2
    )
    assert [record.value for record in dead] == [b"{not json", wrong_shape]
    reasons = [dict(record.headers)["error"].decode() for record in dead]
    assert "not valid JSON" in reasons[0] or "JSON" in reasons[0]
    assert "activity_type" in reasons[1]
    assert dict(dead[1].headers)["source.topic"].decode() == topic


async def test_redelivered_events_apply_once(
    kafka_broker: EmbeddedBroker, store: Store, producer: AIOKafkaProducer
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    topic = await fresh_topic(kafka_broker, group)
    event = an_activity("c-9", 9)
    for _ in range(3):
        await producer.send_and_wait(topic, encode_event(event), key=b"c-9")
    seen: list[str] = []

    async def note(batch: Sequence[CloudEvent]) -> None:
        seen.extend(e.id for e in batch)

    consumer = consumer_for(kafka_broker, topic, group, store, producer, after_store=note)

    async def three_deliveries() -> bool:
        return len(seen) == 3

    await run_until(consumer, three_deliveries)
    assert await store.effect_count() == 1


async def test_an_event_the_relay_sends_again_after_a_crash_before_marking_it_sent_applies_once(
    kafka_broker: EmbeddedBroker, store: Store, producer: AIOKafkaProducer
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    topic = await fresh_topic(kafka_broker, group)
    events = [an_activity(f"c-{n % 4}", n) for n in range(12)]
    async with store.sessions() as session, session.begin():
        await add_encoded_to_outbox(
            session,
            TABLES,
            [(e.id, topic, e.subject, encode_event(e).decode()) for e in events],
        )
    # The relay dies between the broker's acknowledgement and deleting the rows it sent: the
    # next relay sends every row again, each copy at a new offset.
    await send_then_die(a_relay(store, producer), producer, len(events))
    assert await a_relay(store, producer).publish_pending() == len(events)
    copies = await read_topic(kafka_broker.bootstrap_servers, topic, expect=2 * len(events))
    assert len({(r.partition, r.offset) for r in copies}) == 2 * len(events)

    consumer = consumer_for(kafka_broker, topic, group, store, producer)

    async def all_read() -> bool:
        async with store.sessions() as session:
            stored = await session.scalar(
                select(func.sum(TABLES.consumer_offsets.c.next_offset)).where(
                    TABLES.consumer_offsets.c.topic == topic
                )
            )
        return (stored or 0) >= 2 * len(events)

    await run_until(consumer, all_read)
    async with store.sessions() as session:
        applied = (await session.scalars(select(EFFECTS.c.event_id))).all()
        inbox_rows = await session.scalar(select(func.count()).select_from(TABLES.processed_events))
    assert sorted(applied) == sorted(e.id for e in events)
    assert inbox_rows == 0  # known again by producer sequence, not by an inbox of ids


async def test_rows_that_waited_when_sequences_came_in_go_out_unstamped_and_apply_once(
    kafka_broker: EmbeddedBroker, store: Store, producer: AIOKafkaProducer
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    topic = await fresh_topic(kafka_broker, group)
    event = an_activity("c-old", 1)
    async with store.sessions() as session, session.begin():
        await add_encoded_to_outbox(
            session, TABLES, [(event.id, topic, event.subject, encode_event(event).decode())]
        )
        # What the migration does to rows an older relay may have sent already.
        await session.execute(update(TABLES.outbox).values(sequence=-1))
    # Sent, then sent again after a crash before the row was deleted.
    await send_then_die(a_relay(store, producer), producer, 1)
    assert await a_relay(store, producer).publish_pending() == 1
    copies = await read_topic(kafka_broker.bootstrap_servers, topic, expect=2)
    assert [dict(r.headers).get(PRODUCER_HEADER) for r in copies] == [None, None]

    consumer = consumer_for(kafka_broker, topic, group, store, producer)

    async def both_read() -> bool:
        async with store.sessions() as session:
            stored = await session.scalar(
                select(func.sum(TABLES.consumer_offsets.c.next_offset)).where(
                    TABLES.consumer_offsets.c.topic == topic
                )
            )
        return (stored or 0) >= 2

    await run_until(consumer, both_read)
    assert await store.effect_count() == 1  # the second copy known by its event id


async def send_then_die(relay: OutboxRelay, producer: AIOKafkaProducer, expected: int) -> None:
    """What a relay does up to its crash between the broker's acknowledgement and the delete."""
    rows, blocked = await relay.stamped_batch()
    assert blocked is None
    assert len(rows) == expected
    assert await deliver(producer, rows) == [None] * expected
    assert await relay.pending_count() == expected  # still there: it goes out again


def a_relay(store: Store, producer: AIOKafkaProducer) -> OutboxRelay:
    return OutboxRelay(
        name=f"relay-{uuid.uuid4().hex[:6]}",
        engine=store.engine,
        session_factory=store.sessions,
        tables=TABLES,
        producer=producer,
        metrics=ServiceMetrics(),
    )


async def stage(
    store: Store, events: Sequence[CloudEvent], tables: PlumbingTables = TABLES
) -> None:
    async with store.sessions() as session, session.begin():
        for event in events:
            await add_to_outbox(session, tables, event)


async def test_relay_publishes_keyed_by_customer_and_marks_rows_sent(
    kafka_broker: EmbeddedBroker, store: Store, producer: AIOKafkaProducer
) -> None:
    events = [an_activity(f"cust-{uuid.uuid4().hex[:6]}", n) for n in range(5)]
    await stage(store, events)
    relay = a_relay(store, producer)

    assert await relay.publish_pending() == 5
    assert await relay.publish_pending() == 0
    assert await relay.pending_count() == 0
    records = await read_topic(
        kafka_broker.bootstrap_servers, "crm.activities", expect=5, timeout=10
    )
    mine = {e.id: e for e in events}
    published = [r for r in records if decode_event(r.value or b"").id in mine]
    assert len(published) == 5
    for record in published:
        assert record.key == mine[decode_event(record.value or b"").id].subject.encode()


@pytest.mark.postgres
async def test_relay_publishes_rows_committed_out_of_id_order(
    kafka_broker: EmbeddedBroker, postgres_url: str, producer: AIOKafkaProducer
) -> None:
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    store = Store(engine)
    relay = a_relay(store, producer)
    late, early = an_activity("late-customer", 1), an_activity("early-customer", 2)
    try:
        async with store.sessions() as slow_session, slow_session.begin():
            await add_to_outbox(slow_session, TABLES, late)  # takes the lower id, commits last
            await slow_session.flush()
            await stage(store, [early])
            # Both rows, as the slow transaction sees them (its own and the committed one).
            rows: list[Any] = list(
                (
                    await slow_session.execute(select(TABLES.outbox.c.id, TABLES.outbox.c.event_id))
                ).all()
            )
            assert await relay.publish_pending() == 1
        assert await relay.publish_pending() == 1
        ids = {event_id: row_id for row_id, event_id in rows}
        assert ids[late.id] < ids[early.id]
        assert await relay.pending_count() == 0
    finally:
        await engine.dispose()


# ---- requests the broker pays for: the fetch wait while idle, throttled commits


def fetch_wait_of(consumer: AIOKafkaConsumer) -> int:
    """The wait the consumer's next Fetch request asks the broker for."""
    wait: int = consumer._fetcher._fetch_max_wait_ms
    return wait


def paced_consumer(
    broker: EmbeddedBroker, topic: str, group: str, store: Store, producer: AIOKafkaProducer
) -> EventConsumer:
    return EventConsumer(
        name="paced",
        topics=[topic],
        consumer=create_consumer(
            [],
            bootstrap_servers=broker.bootstrap_servers,
            group_id=group,
            client_id=group,
            session_timeout_ms=6_000,
            rebalance_timeout_ms=2_000,
            fetch_max_wait_ms=50,
        ),
        producer=producer,
        session_factory=store.sessions,
        tables=TABLES,
        apply_batch=record_effects,
        metrics=ServiceMetrics(),
        pacing=FetchPacing(busy_ms=50, idle_ms=400, idle_after=0.3),
        commit_every=3600.0,  # only the first batch's commit and the one on leaving
    )


async def until(condition: Callable[[], Awaitable[bool]], task: asyncio.Task[None]) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while not await condition():
        if task.done():
            task.result()
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_set_fetch_wait_reaches_the_request_aiokafka_builds(
    kafka_broker: EmbeddedBroker,
) -> None:
    # Guards the private attribute: an aiokafka that renames it fails here, not silently.
    consumer = create_consumer(
        [], bootstrap_servers=kafka_broker.bootstrap_servers, group_id="g", client_id="g"
    )
    await consumer.start()
    try:
        set_fetch_wait(consumer, 321)
        assert fetch_wait_of(consumer) == 321
    finally:
        await consumer.stop()


async def test_an_idle_consumer_waits_longer_and_a_record_brings_the_short_wait_back(
    kafka_broker: EmbeddedBroker, store: Store, producer: AIOKafkaProducer
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    topic = await fresh_topic(kafka_broker, group)
    consumer = paced_consumer(kafka_broker, topic, group, store, producer)
    kafka = consumer._consumer
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:

        async def idle() -> bool:
            return fetch_wait_of(kafka) == 400

        await until(idle, task)
        events = [an_activity("c-1", n) for n in range(3)]
        # One record, then two: the first batch is committed at once, the later ones only
        # when the consumer leaves.
        for sent, event in enumerate(events, start=1):
            await producer.send_and_wait(topic, encode_event(event), key=b"c-1")
            if sent in (1, 3):

                async def applied(sent: int = sent) -> bool:
                    return await store.effect_count() == sent

                await until(applied, task)
        assert fetch_wait_of(kafka) == 50
        # The broker's committed offset is a hint, sent at most every `commit_every`
        # seconds, and brought up to date when the consumer leaves.
        consumer.stop()
        await asyncio.wait_for(task, 10)
    finally:
        if not task.done():
            consumer.stop()
            await asyncio.wait_for(task, 10)
        await kafka.stop()
    assert sum((await broker_committed(kafka_broker, group, topic)).values()) == len(events)


async def test_only_a_second_of_empty_polls_makes_a_consumer_idle() -> None:
    now = [0.0]
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")  # never started
    pacing = FetchPacing(busy_ms=50, idle_ms=400, idle_after=1.0, clock=lambda: now[0])
    pacing.polled(consumer, records=True)
    now[0] = 5.0  # a long batch, then a poll that finds nothing yet: still busy
    pacing.polled(consumer, records=False)
    assert not pacing.idle
    now[0] = 5.9
    pacing.polled(consumer, records=False)
    assert not pacing.idle
    now[0] = 6.0
    pacing.polled(consumer, records=False)
    assert pacing.idle
    assert consumer._fetch_max_wait_ms == 400
    pacing.polled(consumer, records=True)
    assert not pacing.idle
    assert consumer._fetch_max_wait_ms == 50
