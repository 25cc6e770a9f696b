"""Fixing each outbox row's partition and producer sequence before its first send.

A consumer knows a re-sent copy of one of our events by the (producer, sequence) stamped on
it (see `crm_shared._sequences`), so both must be the same on every send of a row: they are
written to the row, in a transaction committed before the row is handed to the producer.
The partition is fixed with them (Kafka's default partitioner over the record key, so a
customer's events still share one partition) because sequences count per partition.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_shared._bulk import BulkUpdate, BulkWrite
from crm_shared._db import PlumbingTables
from crm_shared._outbox_delivery import OutboxRow

_partitioner = DefaultPartitioner()


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
        # Every drawn row's partition and sequence in one statement (not one per row).
        self._stamp = BulkUpdate(tables.outbox, ("id",), ("partition", "sequence"))
        sequences = tables.outbox_sequences
        self._open = BulkWrite(
            sequences, ("topic", "partition", "producer", "next_sequence"), skip_any_conflict=True
        )
        self._advance = BulkUpdate(sequences, ("topic", "partition"), ("next_sequence",))
        # (topic, partition) -> producer id; a row's id never changes once drawn.
        self._producer_ids: dict[tuple[str, int], str] = {}

    async def sequence(
        self, rows: Sequence[OutboxRow]
    ) -> tuple[list[OutboxRow], BaseException | None]:
        """The rows ready to send, stamped, in order; and the error that stopped the rest.

        A topic whose partitions cannot be learnt now (broker down, topic not there yet)
        stops at its first row: the rows behind it wait, to keep each key's order.
        """
        partitioned: list[OutboxRow] = []
        stopped: BaseException | None = None
        known: dict[str, list[int]] = {}  # topic -> its partitions, asked once per batch
        for row in rows:
            if row.partition is None:
                try:
                    if row.topic not in known:
                        known[row.topic] = sorted(await self._producer.partitions_for(row.topic))
                    partitions = known[row.topic]
                except Exception as error:  # may heal: the relay retries from this row
                    stopped = error
                    break
                key = row.message_key.encode()
                row = replace(row, partition=int(_partitioner(key, partitions, partitions)))
            partitioned.append(row)
        if any(row.sequence is None for row in partitioned):
            partitioned = await self._draw(partitioned)
        stamped = {(r.topic, r.partition or 0) for r in partitioned if (r.sequence or 0) >= 0}
        if stamped - self._producer_ids.keys():
            await self._load_producer_ids()
        return [
            replace(row, producer=self._producer_ids[(row.topic, row.partition or 0)])
            if (row.sequence or 0) >= 0
            else row
            for row in partitioned
        ], stopped

    async def _draw(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """Number the unsequenced rows per (topic, partition), in the batch's order."""
        sequences = self._tables.outbox_sequences
        wanted = sorted({(r.topic, r.partition or 0) for r in rows if r.sequence is None})
        async with self._sessions() as session, session.begin():
            # One relay runs at a time (the advisory lock), so nothing else draws numbers.
            await self._open.run(session, [(t, p, str(uuid.uuid4()), 0) for t, p in wanted])
            found = (
                await session.execute(
                    select(
                        sequences.c.topic,
                        sequences.c.partition,
                        sequences.c.producer,
                        sequences.c.next_sequence,
                    ).where(sequences.c.topic.in_({t for t, _ in wanted}))
                )
            ).all()
            following = {(t, p): int(n) for t, p, _, n in found}
            self._producer_ids.update({(t, p): producer for t, p, producer, _ in found})
            numbered: list[OutboxRow] = []
            drawn: list[OutboxRow] = []
            for row in rows:
                if row.sequence is None:
                    key = (row.topic, row.partition or 0)
                    row = replace(row, sequence=following[key])
                    following[key] += 1
                    drawn.append(row)
                numbered.append(row)
            await self._stamp.run(session, [(r.id, r.partition, r.sequence) for r in drawn])
            await self._advance.run(session, [(t, p, following[(t, p)]) for t, p in wanted])
        return numbered

    async def _load_producer_ids(self) -> None:
        sequences = self._tables.outbox_sequences
        async with self._sessions() as session:
            rows = await session.execute(
                select(sequences.c.topic, sequences.c.partition, sequences.c.producer)
            )
            self._producer_ids.update({(t, p): producer for t, p, producer in rows.all()})
