"""Handing outbox rows to the producer, and telling a row the broker can never take from a
broker that cannot take anything right now.

Only errors about the record itself are permanent: it is too large for the producer or the
broker (``MessageSizeTooLargeError``, the broker's ``RECORD_TOO_LARGE``; aiokafka raises it
before queueing a record over ``max_request_size``), the partition batch it travels in is
larger than the broker's segment (``RecordListTooLargeError``), or its topic name can never be
valid (``InvalidTopicError``). Everything else (timeouts, a broker down, a topic not there
yet, missing authorisation, an unknown error code) may heal, and per-key order forbids
skipping a row that may still be published: those rows wait and are retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import InvalidTopicError, MessageSizeTooLargeError, RecordListTooLargeError

from crm_shared._sequences import PRODUCER_HEADER, SEQUENCE_HEADER

_PERMANENT = (MessageSizeTooLargeError, RecordListTooLargeError, InvalidTopicError)


def is_unpublishable(error: BaseException) -> bool:
    """Whether no retry can ever publish the record that met `error`."""
    return isinstance(error, _PERMANENT)


@dataclass(frozen=True)
class OutboxRow:
    """The columns the relay reads of an unsent row."""

    id: int
    event_id: str
    topic: str
    message_key: str
    payload: str
    # Fixed before the first send (see crm_shared._outbox_sequences); None until then, and
    # sequence -1 for rows that waited when sequences came in (sent unstamped, as before).
    partition: int | None = None
    sequence: int | None = None
    producer: str | None = None

    @property
    def headers(self) -> list[tuple[str, bytes]]:
        """The stamp by which a consumer knows a re-sent copy of this row."""
        if self.producer is None or self.sequence is None or self.sequence < 0:
            return []  # a row from before sequences: known again by its event id
        return [
            (PRODUCER_HEADER, self.producer.encode()),
            (SEQUENCE_HEADER, str(self.sequence).encode()),
        ]

    @property
    def size(self) -> int:
        """The record's value in bytes (what the size limits judge, with the key)."""
        return len(self.payload.encode())


class NotAttempted(Exception):
    """The row was not handed to the producer: an earlier row failed in a way that may heal."""


async def deliver(
    producer: AIOKafkaProducer, rows: Sequence[OutboxRow]
) -> list[BaseException | None]:
    """Send `rows` in order; return per row None (acknowledged) or the error it met.

    All rows are queued before any acknowledgement is awaited, so a batch costs a few round
    trips; aiokafka keeps one request in flight per broker, so a key's records reach their
    partition in the order they were queued. After a send that failed in a way that may heal
    (a topic whose metadata does not come, a full buffer), later rows are not queued at all:
    each would wait out the same timeout.
    """
    queued: list[asyncio.Future[object] | Exception] = []
    for row in rows:
        last = queued[-1] if queued else None
        if isinstance(last, Exception) and not is_unpublishable(last):
            queued.append(NotAttempted())
            continue
        try:
            queued.append(
                await producer.send(
                    row.topic,
                    row.payload.encode(),
                    key=row.message_key.encode(),
                    partition=row.partition,
                    headers=row.headers,
                )
            )
        except Exception as error:  # refused before it was queued
            queued.append(error)
    outcomes: list[BaseException | None] = []
    for delivery in queued:
        if isinstance(delivery, BaseException):
            outcomes.append(delivery)
            continue
        try:
            await delivery
        except Exception as error:
            outcomes.append(error)
        else:
            outcomes.append(None)
    return outcomes
