"""Where a consumer stands, kept in its own database with the effects of each batch.

Two kinds of position, both written in the transaction that applies a batch:
- the next offset per (consumer, topic, partition): the pattern of Kafka Connect sinks and
  Flink for exactly-once into a database. A record below it was applied (or dead-lettered);
  the broker's committed offset is only a hint for tools that watch consumer lag.
- per producer of ours, the sequences seen (see `crm_shared._sequences`).
The consumer's group is its service, whose database this is, so the consumer's name and the
partition identify a position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition
from sqlalchemy import ColumnElement, Table, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared._bulk import BulkWrite
from crm_shared._db import PlumbingTables
from crm_shared._sequences import ProducerPosition, decode_gaps, encode_gaps


@dataclass(frozen=True)
class PositionTables:
    """The two tables a consumer keeps its positions in."""

    offsets: Table
    sequences: Table

    @classmethod
    def of(cls, tables: PlumbingTables) -> PositionTables:
        """The position tables among a service's plumbing tables."""
        return cls(tables.consumer_offsets, tables.consumed_sequences)


async def read_offsets(
    session: AsyncSession,
    table: Table,
    consumer: str,
    partitions: Iterable[TopicPartition],
    *,
    lock: bool = False,
) -> dict[TopicPartition, int]:
    """The stored next offsets of `partitions` (those with none are absent).

    With `lock`, the rows stay locked until the transaction ends (PostgreSQL; SQLite's
    write transaction already excludes every other writer): a replica that was handed the
    same partitions in a rebalance waits for this batch, then sees where it ended.
    """
    wanted = sorted({(tp.topic, tp.partition) for tp in partitions})
    if not wanted:
        return {}
    statement = select(table.c.topic, table.c.partition, table.c.next_offset).where(
        table.c.consumer == consumer,
        _partition_filter(table, wanted),
    )
    if lock:
        statement = statement.with_for_update()
    rows = (await session.execute(statement)).all()
    return {TopicPartition(topic, partition): offset for topic, partition, offset in rows}


def _partition_filter(table: Table, wanted: list[tuple[str, int]]) -> ColumnElement[bool]:
    if len({topic for topic, _ in wanted}) == 1:
        return and_(
            table.c.topic == wanted[0][0],
            table.c.partition.in_([partition for _, partition in wanted]),
        )
    return or_(*(and_(table.c.topic == t, table.c.partition == p) for t, p in wanted))


async def store_offsets(
    session: AsyncSession, table: Table, consumer: str, offsets: Mapping[TopicPartition, int]
) -> None:
    """Set the next offsets of the batch's partitions, in one statement."""
    if not offsets:
        return
    rows = [(consumer, tp.topic, tp.partition, offset) for tp, offset in offsets.items()]
    await _write(table, _OFFSET_COLUMNS, 3).run(session, rows)


_OFFSET_COLUMNS = ("consumer", "topic", "partition", "next_offset")
_PRODUCER_COLUMNS = ("consumer", "producer", "next_sequence", "gaps")
_WRITES: dict[Table, BulkWrite] = {}


def _write(table: Table, columns: tuple[str, ...], keys: int) -> BulkWrite:
    """The upsert of `columns` into `table`, keyed by the first `keys` of them."""
    write = _WRITES.get(table)
    if write is None:
        write = BulkWrite(table, columns, conflict=columns[:keys], update=columns[keys:])
        _WRITES[table] = write
    return write


async def read_producers(
    session: AsyncSession, table: Table, consumer: str, producers: Iterable[str]
) -> dict[str, ProducerPosition]:
    """What `consumer` has seen of each of `producers`; one never seen gets a fresh position."""
    wanted = sorted(set(producers))
    if not wanted:
        return {}
    rows = (
        await session.execute(
            select(table.c.producer, table.c.next_sequence, table.c.gaps).where(
                table.c.consumer == consumer, table.c.producer.in_(wanted)
            )
        )
    ).all()
    seen = {producer: ProducerPosition(int(n), decode_gaps(gaps)) for producer, n, gaps in rows}
    return {producer: seen.get(producer) or ProducerPosition() for producer in wanted}


async def store_producers(
    session: AsyncSession, table: Table, consumer: str, positions: Mapping[str, ProducerPosition]
) -> None:
    """Write back the positions a batch moved, in one statement."""
    if not positions:
        return
    rows = [
        (consumer, producer, position.next_sequence, encode_gaps(position.gaps))
        for producer, position in positions.items()
    ]
    await _write(table, _PRODUCER_COLUMNS, 2).run(session, rows)
