"""The one consumer loop: batches in, one transaction per batch holding effects and offsets."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar, cast

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_contracts import CloudEvent, InvalidEvent, dead_letter_topic
from crm_shared._clock import utc_now
from crm_shared._db import PlumbingTables
from crm_shared._inbox import record_new_events
from crm_shared._kafka import FetchPacing
from crm_shared._logging import event_id_var
from crm_shared._metrics import ServiceMetrics
from crm_shared._outbox import OUTBOX_ADDED
from crm_shared._positions import (
    PositionTables,
    read_offsets,
    read_producers,
    store_offsets,
    store_producers,
)
from crm_shared._sequences import producer_stamp
from crm_shared._wire_decoding import decode_record_value

_logger = logging.getLogger("crm.consumer")


class Consumed(Protocol):
    """What a decoder makes of a record: something the inbox knows again by its id."""

    @property
    def id(self) -> str: ...  # pragma: no cover - a protocol


MessageT = TypeVar("MessageT", bound=Consumed)

Decoder = Callable[[ConsumerRecord[bytes, bytes]], MessageT]
"""Turns a record into what the handler applies; raises `InvalidEvent` to dead-letter it."""

Finisher = Callable[[AsyncSession, Sequence[MessageT]], Awaitable[None]]
"""Applies a batch's new messages inside its transaction; raises to refuse them (the batch is
then applied a message at a time, and the refused ones are dead-lettered)."""

BatchHook = Callable[[Sequence[MessageT]], Awaitable[None]]

BatchFinisher = Finisher[CloudEvent]
"""Applies a batch's new events inside its transaction; raises to refuse them."""


def decode_cloud_event(record: ConsumerRecord[bytes, bytes]) -> CloudEvent:
    """The plain decoder: the record's value as a CloudEvent, with no edge policy applied."""
    return decode_record_value(record.value or b"")


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for transient failures: the batch is retried, never skipped."""

    initial_delay: float = 0.1
    max_delay: float = 10.0
    multiplier: float = 2.0


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same batch later may succeed (database or network down)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    # PostgreSQL's own "try again": a serialization failure or a deadlock victim, a lost
    # connection (class 08), a server shutting down or starting up, too many connections.
    if isinstance(error, DBAPIError):
        state = _sqlstate(error) or ""
        if state in _RETRYABLE_SQLSTATES or state.startswith("08"):
            return True
    return isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError)


_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})


def _sqlstate(error: DBAPIError) -> str | None:
    code = getattr(error.orig, "sqlstate", None) or getattr(error.orig, "pgcode", None)
    return code if isinstance(code, str) else None


@dataclass
class _Decoded(Generic[MessageT]):
    record: ConsumerRecord[bytes, bytes]
    event: MessageT
    fresh: bool = False  # set by the transaction that applies it: new, not seen before


def _partition_of(record: ConsumerRecord[bytes, bytes]) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


def _ends(records: Sequence[ConsumerRecord[bytes, bytes]]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last of `records`."""
    ends: dict[TopicPartition, int] = {}
    for record in records:
        tp = _partition_of(record)
        ends[tp] = max(ends.get(tp, 0), record.offset + 1)
    return ends


class EventConsumer(Generic[MessageT]):
    """Reads batches, applies each record once, dead-letters what cannot be applied.

    Per batch: records are decoded by the consumer's decoder (CloudEvents unless it is given
    another; what it refuses goes to the dead-letter topic with the reason in headers), and
    the rest applied in one database transaction that also stores, per partition, the offset
    after the batch. That stored offset is the truth: on start and on every assignment the
    consumer seeks to it, and a record below it (read again after a crash or a rebalance) is
    skipped in the same transaction that would apply it. The broker's committed offset
    follows the database commit, only as a hint for lag monitors: at most once per
    `commit_every` seconds (each commit is a request the broker pays for), and on leaving.

    The same event appended twice at two offsets is caught by its stamp instead: our relays'
    records by producer sequence (`crm_shared._sequences`), an outside producer's by event id
    in the inbox (`crm_shared._inbox`).
    """

    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        session_factory: async_sessionmaker[AsyncSession],
        tables: PlumbingTables,
        apply_batch: Finisher[MessageT],
        metrics: ServiceMetrics,
        batch_size: int = 500,
        retry: RetryPolicy = RetryPolicy(),
        after_commit: Callable[[], None] | None = None,
        after_store: BatchHook[MessageT] | None = None,
        after_batch: Callable[[], None] | None = None,
        decode: Decoder[MessageT] | None = None,
        pacing: FetchPacing | None = None,
        commit_every: float = 1.0,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self._consumer = consumer
        self._producer = producer
        self._sessions = session_factory
        self._inbox = tables.processed_events
        self._positions = PositionTables.of(tables)
        self._apply_batch = apply_batch
        self._metrics = metrics
        self._batch_size = batch_size
        self._retry = retry
        self._after_commit = after_commit
        self._after_store = after_store
        self._after_batch = after_batch
        # Without a decoder of its own, a consumer reads CloudEvents.
        self._decode = decode or cast(Decoder[MessageT], decode_cloud_event)
        self._pacing = pacing
        self._commit_every = commit_every
        self._uncommitted: dict[TopicPartition, int] = {}
        self._committed_at = float("-inf")
        self._stopping = False

    @property
    def group_id(self) -> str:
        """The consumer group, which also names the dead-letter topics."""
        return str(self._consumer._group_id)

    async def start(self) -> None:
        """Start the Kafka consumer and subscribe: every partition it is assigned (the first
        ones too) is sought to its stored offset."""
        await self._consumer.start()
        self._consumer.subscribe(self.topics, listener=_SeekToStoredOffsets(self))

    def stop(self) -> None:
        """Finish the batch in hand, then leave the loop without reading more."""
        self._stopping = True

    async def run(self) -> None:
        """Consume until stopped."""
        while not self._stopping:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=self._batch_size)
            if self._pacing is not None:
                self._pacing.polled(self._consumer, records=bool(batches))
            if not batches:
                await self.commit_offsets(due_only=True)
                continue
            records = [record for partition in batches.values() for record in partition]
            try:
                await self.process(records)
            except BaseException:
                self._rewind(batches)
                raise
            self._uncommitted.update(
                {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
            )
            await self.commit_offsets(due_only=True)
            self._record_lag(batches)
        await self.commit_offsets()

    def _rewind(self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Point each partition of a batch that failed back at its first record, so a resumed
        loop reads the batch again (the stored offsets skip whatever a transaction applied);
        without it, the next batch's stored offsets would pass records never applied."""
        for partition, records in batches.items():
            if records:
                with contextlib.suppress(Exception):  # a partition revoked meanwhile
                    self._consumer.seek(partition, records[0].offset)

    async def seek_to_stored(self, partitions: Sequence[TopicPartition]) -> None:
        """Move `partitions` to their stored offsets (those with none keep the broker's)."""
        async with self._sessions() as session:
            stored = await read_offsets(session, self._positions.offsets, self.name, partitions)
        for tp, offset in stored.items():
            self._consumer.seek(tp, offset)

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Decode, dead-letter and apply one batch of records, storing where it ends."""
        ends = _ends(records)
        decoded: list[_Decoded[MessageT]] = []
        for record in records:
            try:
                decoded.append(_Decoded(record, self._decode(record)))
            except InvalidEvent as error:
                await self._dead_letter(record, error.reason, error.field)
        try:
            await self._with_retry(functools.partial(self._apply, decoded, ends))
        except _HandlerRefused:
            # One message of the batch cannot be applied: apply them one at a time so the
            # others still take effect, and park the refused ones on the dead-letter topic.
            for item in decoded:
                try:
                    await self._with_retry(
                        functools.partial(self._apply, [item], _ends([item.record]))
                    )
                except _HandlerRefused as refused:
                    cause = refused.__cause__
                    field = cause.field if isinstance(cause, InvalidEvent) else None
                    await self._dead_letter(item.record, str(cause), field)
            # Past the refused (now dead-lettered) records too.
            await self._with_retry(functools.partial(self._apply, [], ends))
        if self._after_store is not None and decoded:
            await self._after_store([item.event for item in decoded])

    async def _with_retry(self, attempt: Callable[[], Awaitable[None]]) -> None:
        delay = self._retry.initial_delay
        while True:
            try:
                await attempt()
                return
            except _HandlerRefused:
                raise
            except Exception as error:
                if not is_transient(error):
                    # e.g. a constraint violated at commit: retrying the same batch won't help.
                    raise _HandlerRefused from error
                _logger.warning(
                    "transient failure; retrying the batch",
                    extra={"consumer": self.name, "error_type": type(error).__name__},
                )
                await asyncio.sleep(delay)
                delay = min(delay * self._retry.multiplier, self._retry.max_delay)

    async def _apply(
        self, items: Sequence[_Decoded[MessageT]], ends: dict[TopicPartition, int]
    ) -> None:
        outbox_added = False
        async with self._sessions() as session, session.begin():
            # First, and locked: a replica handed these partitions meanwhile waits for this
            # transaction, then finds the records applied. A failure below rolls it all back.
            stored = await read_offsets(
                session, self._positions.offsets, self.name, ends, lock=True
            )
            fresh = await self._new_messages(session, items, stored)
            if fresh:
                token = event_id_var.set(fresh[0].id if len(fresh) == 1 else None)
                try:
                    await self._apply_batch(session, fresh)
                except Exception as error:
                    if is_transient(error):
                        raise
                    raise _HandlerRefused from error
                finally:
                    event_id_var.reset(token)
            moved = {tp: end for tp, end in ends.items() if end > stored.get(tp, -1)}
            await store_offsets(session, self._positions.offsets, self.name, moved)
            outbox_added = bool(session.info.get(OUTBOX_ADDED))
        applied: dict[str, int] = {}  # per topic, counted once the batch is committed
        for item in items:
            if item.fresh:
                applied[item.record.topic] = applied.get(item.record.topic, 0) + 1
            else:
                self._metrics.events_processed.labels(item.record.topic, "duplicate").inc()
        for topic, count in applied.items():
            self._metrics.events_processed.labels(topic, "applied").inc(count)
        if outbox_added and self._after_commit is not None:
            self._after_commit()
        if fresh and self._after_batch is not None:
            self._after_batch()

    async def _new_messages(
        self,
        session: AsyncSession,
        items: Sequence[_Decoded[MessageT]],
        stored: dict[TopicPartition, int],
    ) -> list[MessageT]:
        """The messages of `items` not applied before; marks each item fresh or not."""
        unread = [
            item
            for item in items
            if item.record.offset >= stored.get(_partition_of(item.record), 0)
        ]
        stamps = {id(item): producer_stamp(item.record.headers) for item in unread}
        producers = {stamp[0] for stamp in stamps.values() if stamp is not None}
        positions = await read_producers(session, self._positions.sequences, self.name, producers)
        unstamped = [item.event.id for item in unread if stamps[id(item)] is None]
        new_ids = await record_new_events(session, self._inbox, self.name, unstamped, utc_now())
        fresh: list[MessageT] = []
        for item in items:
            item.fresh = False
        for item in unread:
            stamp = stamps[id(item)]
            if stamp is not None:
                item.fresh = positions[stamp[0]].admit(stamp[1])
            elif item.event.id in new_ids:
                new_ids.discard(item.event.id)  # a second copy in this batch is not new
                item.fresh = True
            if item.fresh:
                fresh.append(item.event)
        await store_producers(session, self._positions.sequences, self.name, positions)
        return fresh

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], reason: str, field: str | None
    ) -> None:
        topic = dead_letter_topic(record.topic, self.group_id)
        headers = [
            ("error", reason.encode()),
            ("error.field", (field or "").encode()),
            ("source.topic", record.topic.encode()),
            ("source.partition", str(record.partition).encode()),
            ("source.offset", str(record.offset).encode()),
            ("consumer", self.name.encode()),
        ]
        await self._producer.send_and_wait(topic, record.value, key=record.key, headers=headers)
        self._metrics.dead_letters.labels(record.topic).inc()
        self._metrics.events_processed.labels(record.topic, "dead_lettered").inc()
        _logger.warning(
            "event dead-lettered",
            extra={"topic": record.topic, "offset": record.offset, "reason": reason},
        )

    async def commit_offsets(
        self, *, due_only: bool = False, partitions: Sequence[TopicPartition] | None = None
    ) -> None:
        """Commit to the broker where the stored batches end (all, or those of `partitions`);
        with `due_only`, only once `commit_every` seconds have passed since the last commit."""
        if due_only and time.monotonic() - self._committed_at < self._commit_every:
            return
        wanted = self._uncommitted.keys() if partitions is None else partitions
        offsets = {tp: self._uncommitted.pop(tp) for tp in list(wanted) if tp in self._uncommitted}
        if not offsets:
            return
        self._committed_at = time.monotonic()
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError):
            # Only a hint: the offsets stored with the batch are what a restart seeks to.
            _logger.warning("offset commit to the broker failed", exc_info=True)

    def _record_lag(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        for tp, records in batches.items():
            end = self._consumer.highwater(tp)
            if end is not None and records:
                lag = max(end - (records[-1].offset + 1), 0)
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)


class _HandlerRefused(Exception):
    """The handler rejected an event for a reason that retrying will not cure."""


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    """On every assignment (the first one too), the database's offsets win over the broker's."""

    def __init__(self, consumer: EventConsumer[Any]) -> None:
        self._owner = consumer

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """What was applied is in the database already; the broker's hint is brought up to
        date while this member still owns the partitions."""
        await self._owner.commit_offsets(partitions=list(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """Seek to the stored offsets; if the database cannot say now, each batch still
        skips what its transaction finds applied."""
        try:
            await self._owner.seek_to_stored(list(assigned))
        except Exception:
            _logger.warning(
                "could not read stored offsets; starting from the broker's",
                extra={"consumer": self._owner.name},
                exc_info=True,
            )
