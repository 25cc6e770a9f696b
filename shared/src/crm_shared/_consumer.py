"""The one consumer loop: batches in, one transaction per batch, offsets after the commit."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_contracts import CloudEvent, InvalidEvent, dead_letter_topic, decode_event
from crm_shared._clock import utc_now
from crm_shared._db import PlumbingTables
from crm_shared._inbox import record_new_events
from crm_shared._logging import event_id_var
from crm_shared._metrics import ServiceMetrics
from crm_shared._outbox import OUTBOX_ADDED

_logger = logging.getLogger("crm.consumer")


class Consumed(Protocol):
    """What a decoder makes of a record: something the inbox knows again by its id."""

    @property
    def id(self) -> str: ...  # pragma: no cover - a protocol


MessageT = TypeVar("MessageT", bound=Consumed)

Decoder = Callable[[ConsumerRecord[bytes, bytes]], MessageT]
"""Turns a record into what the handler applies; raises `InvalidEvent` to dead-letter it."""

Handler = Callable[[AsyncSession, MessageT], Awaitable[None]]
"""Applies one message inside the batch's transaction; raises to refuse it."""

Finisher = Callable[[AsyncSession, Sequence[MessageT]], Awaitable[None]]
"""Runs once per batch inside its transaction, after every new message was applied."""

EventHandler = Handler[CloudEvent]
"""Applies one event inside the batch's transaction; raises to refuse it."""

BatchHook = Callable[[Sequence[MessageT]], Awaitable[None]]

BatchFinisher = Finisher[CloudEvent]
"""Runs once per batch inside its transaction, after every new event was applied."""


def decode_cloud_event(record: ConsumerRecord[bytes, bytes]) -> CloudEvent:
    """The plain decoder: the record's value as a CloudEvent, with no edge policy applied."""
    return decode_event(record.value or b"")


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


@dataclass(frozen=True)
class _Decoded(Generic[MessageT]):
    record: ConsumerRecord[bytes, bytes]
    event: MessageT


class EventConsumer(Generic[MessageT]):
    """Reads batches, applies each new event once (inbox), dead-letters what cannot be applied.

    Per batch: events are decoded by the consumer's decoder (CloudEvents unless it is given
    another; what it refuses goes to the dead-letter topic with the reason in headers),
    applied in one database transaction that also records their ids as processed, and only
    after that commit are the offsets committed. A crash in between re-delivers the batch
    and the inbox turns it into a no-op.
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
        handler: Handler[MessageT],
        metrics: ServiceMetrics,
        batch_size: int = 500,
        retry: RetryPolicy = RetryPolicy(),
        after_commit: Callable[[], None] | None = None,
        after_store: BatchHook[MessageT] | None = None,
        finish_batch: Finisher[MessageT] | None = None,
        after_batch: Callable[[], None] | None = None,
        decode: Decoder[MessageT] | None = None,
    ) -> None:
        self.name = name
        self.topics = list(topics)
        self._consumer = consumer
        self._producer = producer
        self._sessions = session_factory
        self._inbox = tables.processed_events
        self._handler = handler
        self._metrics = metrics
        self._batch_size = batch_size
        self._retry = retry
        self._after_commit = after_commit
        self._after_store = after_store
        self._finish_batch = finish_batch
        self._after_batch = after_batch
        # Without a decoder of its own, a consumer reads CloudEvents.
        self._decode = decode or cast(Decoder[MessageT], decode_cloud_event)
        self._stopping = False

    @property
    def group_id(self) -> str:
        """The consumer group, which also names the dead-letter topics."""
        return str(self._consumer._group_id)

    def stop(self) -> None:
        """Finish the batch in hand, then leave the loop without reading more."""
        self._stopping = True

    async def run(self) -> None:
        """Consume until stopped."""
        while not self._stopping:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=self._batch_size)
            if not batches:
                continue
            records = [record for partition in batches.values() for record in partition]
            await self.process(records)
            await self._commit_offsets(batches)
            self._record_lag(batches)

    async def process(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Decode, dead-letter and apply one batch of records (offsets are the caller's)."""
        decoded: list[_Decoded[MessageT]] = []
        for record in records:
            try:
                decoded.append(_Decoded(record, self._decode(record)))
            except InvalidEvent as error:
                await self._dead_letter(record, error.reason, error.field)
        if not decoded:
            return
        try:
            await self._with_retry(functools.partial(self._apply, decoded))
        except _HandlerRefused:
            # One event of the batch cannot be applied: apply them one at a time so the
            # others still take effect, and park the refused ones on the dead-letter topic.
            for item in decoded:
                try:
                    await self._with_retry(functools.partial(self._apply, [item]))
                except _HandlerRefused as refused:
                    cause = refused.__cause__
                    field = cause.field if isinstance(cause, InvalidEvent) else None
                    await self._dead_letter(item.record, str(cause), field)
        if self._after_store is not None:
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

    async def _apply(self, items: Sequence[_Decoded[MessageT]]) -> None:
        outbox_added = False
        async with self._sessions() as session, session.begin():
            # Recorded first, in this transaction: a failure below rolls the records back too.
            new = await record_new_events(
                session, self._inbox, self.name, [item.event.id for item in items], utc_now()
            )
            fresh: list[MessageT] = []
            applied: dict[str, int] = {}  # per topic, counted once the batch is committed
            for item in items:
                if item.event.id not in new:  # applied before, or earlier in this batch
                    self._metrics.events_processed.labels(item.record.topic, "duplicate").inc()
                    continue
                new.discard(item.event.id)
                fresh.append(item.event)
                applied[item.record.topic] = applied.get(item.record.topic, 0) + 1
                token = event_id_var.set(item.event.id)
                try:
                    await self._handler(session, item.event)
                except Exception as error:
                    if is_transient(error):
                        raise
                    raise _HandlerRefused from error
                finally:
                    event_id_var.reset(token)
            if fresh and self._finish_batch is not None:
                try:
                    await self._finish_batch(session, fresh)
                except Exception as error:
                    if is_transient(error):
                        raise
                    raise _HandlerRefused from error
            outbox_added = bool(session.info.get(OUTBOX_ADDED))
        for topic, count in applied.items():
            self._metrics.events_processed.labels(topic, "applied").inc(count)
        if outbox_added and self._after_commit is not None:
            self._after_commit()
        if fresh and self._after_batch is not None:
            self._after_batch()

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

    async def _commit_offsets(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError):
            # Partitions moved to another member mid-batch: it re-reads them, and the
            # inbox makes the second application a no-op.
            _logger.warning("offset commit failed; batch will be re-read", exc_info=True)

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
