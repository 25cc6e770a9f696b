"""Outbox rows get their partition and producer sequence once, and a stale draw stamps nothing
it should not: every partition's sequences stay 0, 1, 2... with no number twice."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_contracts import ActivityRecorded, build_event
from crm_shared import (
    add_many_to_outbox,
    create_engine,
    create_producer,
    create_session_factory,
    ensure_topics,
    new_metadata,
    plumbing_tables,
)
from crm_shared._outbox_delivery import OutboxRow
from crm_shared._outbox_sequences import OutboxSequencer, SequencesMoved
from crm_shared.testing import EmbeddedBroker

pytestmark = pytest.mark.kafka

METADATA = new_metadata()
TABLES = plumbing_tables(METADATA)
PARTITIONS = 3  # so that a batch of twenty customers touches every partition


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    yield engine
    await engine.dispose()


@pytest.fixture
async def producer(kafka_broker: EmbeddedBroker) -> AsyncIterator[AIOKafkaProducer]:
    kafka_producer = create_producer(kafka_broker.bootstrap_servers, client_id="tests")
    await kafka_producer.start()
    yield kafka_producer
    await kafka_producer.stop()


async def staged(
    sessions: async_sessionmaker[AsyncSession], topic: str, customers: int
) -> list[OutboxRow]:
    """One activity per customer staged in the outbox; the unstamped rows, in id order."""
    now = datetime.now(UTC)
    events = [
        build_event(
            ActivityRecorded(
                customer_id=f"c-{uuid.uuid4().hex[:8]}",
                activity_id=f"a-{n}",
                activity_type="page_view",
                occurred_at=now,
            ),
            source="/tests",
            time=now,
        )
        for n in range(customers)
    ]
    async with sessions() as session, session.begin():
        await add_many_to_outbox(session, TABLES, events)
    outbox = TABLES.outbox
    async with sessions() as session:
        rows = await session.execute(
            select(
                outbox.c.id,
                outbox.c.event_id,
                outbox.c.topic,
                outbox.c.message_key,
                outbox.c.payload,
                outbox.c.partition,
                outbox.c.sequence,
            )
            .where(outbox.c.sequence.is_(None))
            .order_by(outbox.c.id)
        )
        return [OutboxRow(*row) for row in rows.all()]


async def stored_stamps(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, int, int]]:
    """(key, partition, sequence) of every stamped row, in id order."""
    outbox = TABLES.outbox
    async with sessions() as session:
        rows = await session.execute(
            select(outbox.c.message_key, outbox.c.partition, outbox.c.sequence)
            .where(outbox.c.sequence.is_not(None))
            .order_by(outbox.c.id)
        )
        return [(key, int(partition), int(sequence)) for key, partition, sequence in rows.all()]


async def a_topic(broker: EmbeddedBroker) -> str:
    topic = f"test.{uuid.uuid4().hex[:12]}"
    await ensure_topics(broker.bootstrap_servers, [topic], partitions=PARTITIONS)
    return topic


async def test_rows_are_stamped_with_sequences_in_id_order_per_partition(
    engine: AsyncEngine, producer: AIOKafkaProducer, kafka_broker: EmbeddedBroker
) -> None:
    sessions = create_session_factory(engine)
    topic = await a_topic(kafka_broker)
    sequencer = OutboxSequencer(session_factory=sessions, tables=TABLES, producer=producer)
    for _ in range(3):  # three batches, the counters carried from one to the next
        rows = await staged(sessions, topic, 25)
        stamped, stopped = await sequencer.sequence(rows)
        assert stopped is None
        assert [row.id for row in stamped] == [row.id for row in rows]
        assert all(row.producer is not None for row in stamped)
    stamps = await stored_stamps(sessions)
    assert len(stamps) == 75
    per_partition: dict[int, list[int]] = defaultdict(list)
    for _, partition, sequence in stamps:
        per_partition[partition].append(sequence)
    for sequences in per_partition.values():
        assert sequences == list(range(len(sequences)))  # in id order, none twice, no gap


async def test_a_draw_after_another_relay_drew_fails_and_the_retry_follows_on(
    engine: AsyncEngine, producer: AIOKafkaProducer, kafka_broker: EmbeddedBroker
) -> None:
    sessions = create_session_factory(engine)
    topic = await a_topic(kafka_broker)
    first = OutboxSequencer(session_factory=sessions, tables=TABLES, producer=producer)
    second = OutboxSequencer(session_factory=sessions, tables=TABLES, producer=producer)
    await first.sequence(await staged(sessions, topic, 20))
    # The lock changed hands: the other relay draws from the counters in the table.
    await second.sequence(await staged(sessions, topic, 20))
    behind = await staged(sessions, topic, 20)
    with pytest.raises(SequencesMoved):
        await first.sequence(behind)  # its counters are stale: none of them advance
    assert len(await stored_stamps(sessions)) == 40
    # Read again (the relay forgets its counters on the failure) and retried: it follows on.
    stamped, stopped = await first.sequence(await staged(sessions, topic, 0))
    assert stopped is None
    assert len(stamped) == 20
    per_partition: dict[int, list[int]] = defaultdict(list)
    for _, partition, sequence in await stored_stamps(sessions):
        per_partition[partition].append(sequence)
    for sequences in per_partition.values():
        assert sorted(sequences) == list(range(len(sequences)))
