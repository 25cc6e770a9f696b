"""Fixing each outbox row's partition and producer sequence before its first send.

A consumer knows a re-sent copy of one of our events by the (producer, sequence) stamped on
it (see `crm_shared._sequences`), so both must be the same on every send of a row: they are
written to the row, in a statement committed before the row is handed to the producer.
The partition is fixed with them (Kafka's default partitioner over the record key, so a
customer's events still share one partition) because sequences count per partition.

Only the publishing relay draws numbers (the advisory lock), so it keeps each producer's next
sequence in memory and stamps a batch in one statement that also advances the counters. That
statement advances a counter only from the value this relay last saw, and stamps only the
rows of counters it advanced: if another relay drew meanwhile (a lock lost and taken over),
nothing of the stale draw is written, the counters are read again and the batch is retried.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_shared._bulk import BulkUpdate, BulkWrite
from crm_shared._db import PlumbingTables
from crm_shared._outbox_delivery import OutboxRow

_partitioner = DefaultPartitioner()
AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}


class SequencesMoved(RuntimeError):
    """Another relay drew sequences since this one read them: read again and retry."""


@dataclass
class _Producer:
    id: str
    next_sequence: int


class OutboxSequencer:
    """Gives unsequenced rows a partition and the next sequence of its producer."""

    def __init__(
        self,
        *,
        session_factory: async_sessionmaker[AsyncSession],
        tables: PlumbingTables,
        producer: AIOKafkaProducer,
    ) -> None:
        self._sessions = session_factory
        self._tables = tables
        self._producer = producer
        self._stamp = BulkUpdate(tables.outbox, ("id",), ("partition", "sequence"))
        sequences = tables.outbox_sequences
        self._open = BulkWrite(
            sequences, ("topic", "partition", "producer", "next_sequence"), skip_any_conflict=True
        )
        self._advance_and_stamp = _advance_and_stamp_sql(tables)
        # (topic, partition) -> its producer id and the next sequence as this relay last saw it
        self._producers: dict[tuple[str, int], _Producer] = {}

    def forget(self) -> None:
        """Read the counters again before the next draw (after leadership changed hands)."""
        self._producers.clear()

    async def sequence(
        self, rows: Sequence[OutboxRow]
    ) -> tuple[list[OutboxRow], BaseException | None]:
        """The rows ready to send, stamped, in order; and the error that stopped the rest.

        A topic whose partitions cannot be learnt now (broker down, topic not there yet)
        stops at its first row: the rows behind it wait, to keep each key's order.
        """
        # Each row's partition and sequence are worked out first and the row is copied once,
        # at the end, with all three stamps: the relay handles every event, row by row.
        ready: list[OutboxRow] = []
        partitions: list[int] = []
        stopped: BaseException | None = None
        known: dict[str, list[int]] = {}  # topic -> its partitions, asked once per batch
        for row in rows:
            partition = row.partition
            if partition is None:
                try:
                    if row.topic not in known:
                        known[row.topic] = sorted(await self._producer.partitions_for(row.topic))
                    partitions_of_topic = known[row.topic]
                except Exception as error:  # may heal: the relay retries from this row
                    stopped = error
                    break
                key = row.message_key.encode()
                partition = int(_partitioner(key, partitions_of_topic, partitions_of_topic))
            ready.append(row)
            partitions.append(partition)
        pairs = [(row.topic, partition) for row, partition in zip(ready, partitions, strict=True)]
        stamped = {pair for row, pair in zip(ready, pairs, strict=True) if (row.sequence or 0) >= 0}
        if stamped - self._producers.keys():
            await self._load(stamped - self._producers.keys())
        sequences = [row.sequence for row in ready]
        if any(sequence is None for sequence in sequences):
            sequences = await self._draw(ready, pairs, sequences)
        return [
            replace(
                row,
                partition=pair[1],
                sequence=sequence,
                producer=self._producers[pair].id if (sequence or 0) >= 0 else row.producer,
            )
            for row, pair, sequence in zip(ready, pairs, sequences, strict=True)
        ], stopped

    async def _load(self, missing: set[tuple[str, int]]) -> None:
        """Open a producer for each pair that has none yet, then read every counter."""
        sequences = self._tables.outbox_sequences
        async with self._sessions() as session, session.begin():
            await self._open.run(session, [(t, p, str(uuid.uuid4()), 0) for t, p in missing])
            found = await session.execute(
                select(
                    sequences.c.topic,
                    sequences.c.partition,
                    sequences.c.producer,
                    sequences.c.next_sequence,
                )
            )
            self._producers = {(t, p): _Producer(i, int(n)) for t, p, i, n in found.all()}

    async def _draw(
        self,
        rows: list[OutboxRow],
        pairs: list[tuple[str, int]],
        sequences: list[int | None],
    ) -> list[int | None]:
        """Number the unsequenced rows per (topic, partition), in the batch's order; return
        every row's sequence."""
        following = {pair: producer.next_sequence for pair, producer in self._producers.items()}
        numbered: list[int | None] = []
        drawn: list[tuple[int, str, int, int]] = []  # id, topic, partition, sequence
        for row, pair, sequence in zip(rows, pairs, sequences, strict=True):
            if sequence is None:
                sequence = following[pair]
                following[pair] += 1
                drawn.append((row.id, pair[0], pair[1], sequence))
            numbered.append(sequence)
        moved = sorted({(topic, partition) for _, topic, partition, _ in drawn})
        advances = [
            (t, p, self._producers[(t, p)].next_sequence, following[(t, p)]) for t, p in moved
        ]
        try:
            await self._write(advances, drawn)
        except BaseException:
            self.forget()
            raise
        for t, p, _, after in advances:
            self._producers[(t, p)].next_sequence = after
        return numbered

    async def _write(
        self, advances: list[tuple[str, int, int, int]], drawn: list[tuple[int, str, int, int]]
    ) -> None:
        async with self._sessions() as session:
            if session.get_bind().dialect.name == "postgresql":
                # One statement, so one implicit transaction: no BEGIN and COMMIT round trips.
                connection = await session.connection(execution_options=AUTOCOMMIT)
                result = await connection.exec_driver_sql(
                    self._advance_and_stamp,
                    (
                        *(list(column) for column in zip(*advances, strict=True)),
                        *(list(column) for column in zip(*drawn, strict=True)),
                    ),
                )
                if result.rowcount != len(drawn):
                    raise SequencesMoved("another relay drew sequences; reading them again")
                return
            async with session.begin():
                counters = self._tables.outbox_sequences
                for topic, partition, before, after in advances:
                    advanced = await session.execute(
                        update(counters)
                        .where(
                            counters.c.topic == topic,
                            counters.c.partition == partition,
                            counters.c.next_sequence == before,
                        )
                        .values(next_sequence=after)
                    )
                    if advanced.rowcount != 1:  # type: ignore[attr-defined]
                        raise SequencesMoved("another relay drew sequences; reading them again")
                await self._stamp.run(session, [(i, p, n) for i, _, p, n in drawn])


def _advance_and_stamp_sql(tables: PlumbingTables) -> str:
    """Advance each counter from its expected value and stamp the rows of those it advanced."""
    return (
        f"WITH advanced AS (UPDATE {tables.outbox_sequences.name} AS s "
        "SET next_sequence = v.after "
        "FROM unnest($1::varchar[], $2::integer[], $3::bigint[], $4::bigint[]) "
        "AS v(topic, partition, before, after) "
        "WHERE s.topic = v.topic AND s.partition = v.partition "
        "AND s.next_sequence = v.before RETURNING s.topic, s.partition) "
        f"UPDATE {tables.outbox.name} AS o SET partition = r.partition, sequence = r.sequence "
        "FROM unnest($5::bigint[], $6::varchar[], $7::integer[], $8::bigint[]) "
        "AS r(id, topic, partition, sequence) "
        "JOIN advanced AS a ON a.topic = r.topic AND a.partition = r.partition "
        "WHERE o.id = r.id"
    )
