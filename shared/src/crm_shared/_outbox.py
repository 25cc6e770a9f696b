"""Transactional outbox: events are rows written with the state change, then published."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Select, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_contracts import CloudEvent, encode_event
from crm_shared._bulk import BulkWrite, among
from crm_shared._clock import utc_now
from crm_shared._db import PlumbingTables
from crm_shared._metrics import ServiceMetrics
from crm_shared._outbox_delivery import NotAttempted, OutboxRow, deliver, is_unpublishable
from crm_shared._outbox_health import (
    OutboxBacklog,
    count_unsent,
    read_backlog,
    read_gauges,
    record_backlog,
)
from crm_shared._outbox_leadership import leadership
from crm_shared._outbox_sequences import AUTOCOMMIT, OutboxSequencer

_logger = logging.getLogger("crm.outbox")
OUTBOX_ADDED = "crm.outbox_added"
# Counting a large backlog walks its index: while busy, the gauges are refreshed this often.
_GAUGES_EVERY_SECONDS = 2.0


async def add_to_outbox(session: AsyncSession, tables: PlumbingTables, event: CloudEvent) -> None:
    """Stage `event` for publishing in the session's transaction, keyed by its subject."""
    await session.execute(
        insert(tables.outbox).values(
            event_id=event.id,
            topic=str(event.data.topic),
            message_key=event.subject,
            payload=encode_event(event).decode(),
            created_at=utc_now(),
        )
    )
    session.info[OUTBOX_ADDED] = True


async def add_many_to_outbox(
    session: AsyncSession, tables: PlumbingTables, events: Sequence[CloudEvent]
) -> None:
    """Stage many events in one statement (a re-score can publish for a whole base)."""
    if not events:
        return
    now = utc_now()
    await _outbox_rows(tables).run(
        session,
        [
            (event.id, str(event.data.topic), event.subject, encode_event(event).decode(), now)
            for event in events
        ],
    )
    session.info[OUTBOX_ADDED] = True


def _outbox_rows(tables: PlumbingTables) -> BulkWrite:
    write = _OUTBOX_WRITES.get(tables.outbox)
    if write is None:
        write = BulkWrite(
            tables.outbox, ("event_id", "topic", "message_key", "payload", "created_at")
        )
        _OUTBOX_WRITES[tables.outbox] = write
    return write


_OUTBOX_WRITES: dict[Table, BulkWrite] = {}
# From this many rows `add_encoded_to_outbox` COPYs on PostgreSQL.
_COPY_FROM_ROWS = 2_000


async def add_encoded_to_outbox(
    session: AsyncSession, tables: PlumbingTables, rows: Sequence[tuple[str, str, str, str]]
) -> None:
    """Stage events the caller serialised itself: (event id, topic, key, CloudEvent JSON).

    For a caller that writes the same payload text into its own row (scoring serialises each
    score once). On PostgreSQL many rows go in by COPY, in the session's transaction: a
    million rows in seconds instead of minutes of INSERTs; a consumer batch's few hundred in
    one array insert, without COPY's extra round trips.
    """
    if not rows:
        return
    now = utc_now()
    if len(rows) < _COPY_FROM_ROWS:
        await _outbox_rows(tables).run(session, [(*row, now) for row in rows])
    elif session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            tables.outbox.name,
            records=[(*row, now) for row in rows],
            columns=["event_id", "topic", "message_key", "payload", "created_at"],
        )
    else:
        await session.execute(
            insert(tables.outbox),
            [
                {"event_id": i, "topic": t, "message_key": k, "payload": p, "created_at": now}
                for i, t, k, p in rows
            ],
        )
    session.info[OUTBOX_ADDED] = True


class OutboxRelay:
    """Publishes unsent outbox rows in id order and deletes them once the broker has them.

    It selects rows *not yet sent* rather than rows with an id above the last one seen:
    ids are drawn before commit, so a transaction that commits late holds a lower id than
    rows already published, and an id watermark would skip it forever. On PostgreSQL an
    advisory lock lets one relay per service run at a time, keeping per-key order, and a
    notice from each committing transaction wakes it (see crm_shared._outbox_leadership).

    A batch is three statements, each its own implicit transaction on PostgreSQL: read the
    unsent rows, stamp the new ones (partition and producer sequence, committed before their
    first send, so a re-send after a crash carries the same stamp and is dropped by the
    consumer), and, after the broker acknowledged them, delete them. Nothing reads a sent
    row, and a delete leaves no new row version behind, unlike marking it sent did.

    A row the broker can never take (too large) is parked: marked with the time and reason,
    counted, logged at ERROR, and passed over, so the rows behind it flow on. A failure that
    may heal (broker down) stops the batch at that row: it and the rows behind it wait and
    are retried in order, while the gauges and ``/readyz`` show the backlog growing.
    """

    def __init__(
        self,
        *,
        name: str,
        engine: AsyncEngine,
        session_factory: async_sessionmaker[AsyncSession],
        tables: PlumbingTables,
        producer: AIOKafkaProducer,
        metrics: ServiceMetrics,
        batch_size: int = 500,
        poll_interval: float = 0.5,
        listening_poll_interval: float = 5.0,
    ) -> None:
        self._name = name
        self._engine = engine
        self._sessions = session_factory
        self._outbox = tables.outbox
        self._producer = producer
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._listening_poll_interval = max(listening_poll_interval, poll_interval)
        self._sequencer = OutboxSequencer(
            session_factory=session_factory, tables=tables, producer=producer
        )
        self._unsent = _unsent_query(tables.outbox, batch_size)
        self._wake = asyncio.Event()
        self._stopping = False
        self._gauges_at = 0.0
        self._gauges_stale = True  # rows went out since the gauges were last read
        self.listening = False  # whether a notice, not the poll, wakes this relay now
        self.notices = 0  # outbox notices received: how the tests see a wake by NOTIFY

    def wake(self) -> None:
        """Publish soon: called after a commit that added outbox rows."""
        self._wake.set()

    def _on_notice(self) -> None:
        self.notices += 1
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to finish after the current batch."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Relay until stopped; failures back off and retry, rows stay unsent meanwhile."""
        backoff = 0.2
        while not self._stopping:
            try:
                async with leadership(self._engine, self._name, self._on_notice) as leading:
                    # Another relay may have drawn sequences while this one did not lead.
                    self._sequencer.forget()
                    self.listening = leading.listening
                    while not self._stopping and leading.still_held():
                        # Cleared before the rows are read: a notice from a commit the read
                        # does not see yet wakes the next round.
                        self._wake.clear()
                        published = await self.publish_pending()
                        backoff = 0.2
                        await self._refresh_gauges(force=published == 0 and self._gauges_stale)
                        if published < self._batch_size:
                            await self._idle(self._round_timeout())
                    self.listening = False
                    if not self._stopping:  # not the leader (or no longer): try again later
                        await self._refresh_gauges()
                        self._wake.clear()
                        await self._idle(self._poll_interval)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.listening = False
                _logger.warning("outbox relay failed; retrying", exc_info=True)
                with contextlib.suppress(Exception):
                    await self._refresh_gauges()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    @property
    def waits_for_notice(self) -> bool:
        """Whether, when idle, only a notice or a wake (not a poll due soon) starts a round."""
        return self.listening and not self._gauges_stale

    def _round_timeout(self) -> float:
        if not self.listening:
            return self._poll_interval
        # Rows went out since the gauges were read: a round soon reads them again, so that
        # the pending gauge reaches 0 without waiting for the fallback poll.
        if self._gauges_stale:
            return min(self._listening_poll_interval, _GAUGES_EVERY_SECONDS)
        return self._listening_poll_interval

    async def _idle(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _refresh_gauges(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._gauges_at < _GAUGES_EVERY_SECONDS:
            return
        await self.refresh_gauges()

    async def refresh_gauges(self) -> OutboxBacklog:
        """Set the pending, oldest-age and parked gauges from the table; return the backlog."""
        self._gauges_stale = False
        backlog, pending = await read_gauges(self._sessions, self._outbox)
        record_backlog(self._metrics, backlog, pending, utc_now())
        self._gauges_at = time.monotonic()
        return backlog

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; return how many were published or parked.

        Raises the first error that may heal, after recording what the batch did achieve:
        every acknowledged row is deleted, every unpublishable one parked, whatever their
        place in the batch.
        """
        rows, blocked = await self.stamped_batch()
        if not rows and blocked is None:
            return 0
        outcomes = await deliver(self._producer, rows)
        sent: list[OutboxRow] = []
        parked: list[tuple[OutboxRow, BaseException]] = []
        for row, error in zip(rows, outcomes, strict=True):
            if error is None:
                sent.append(row)
            elif blocked is not None or isinstance(error, NotAttempted):
                continue  # waits behind the failure, to keep its key's order
            elif is_unpublishable(error):
                # A broker refuses a whole partition batch for one record over its limit:
                # alone, a row that merely travelled with it goes through.
                alone = (await deliver(self._producer, [row]))[0]
                if alone is None:
                    sent.append(row)
                elif is_unpublishable(alone):
                    parked.append((row, alone))
                else:
                    blocked = alone
            else:
                blocked = error
        await self._record(sent, parked)
        if blocked is not None:
            raise blocked
        return len(sent) + len(parked)

    async def stamped_batch(self) -> tuple[list[OutboxRow], BaseException | None]:
        """The next unsent rows, each with its partition and sequence committed; and the
        error (topic metadata not available) that held back the rows after them."""
        unsent = await self._unsent_batch()
        if not unsent:
            return [], None
        # Each row's partition and sequence are committed before its first send, so every
        # re-send of it (after a crash, after a timeout) carries the same stamp.
        return await self._sequencer.sequence(unsent)

    async def _unsent_batch(self) -> list[OutboxRow]:
        async with self._sessions() as session:
            connection = await session.connection(execution_options=_one_statement(session))
            result = await connection.execute(self._unsent)
            return [OutboxRow(*row) for row in result.all()]

    async def _record(
        self, sent: Sequence[OutboxRow], parked: Sequence[tuple[OutboxRow, BaseException]]
    ) -> None:
        if not sent and not parked:
            return
        if sent:
            async with self._sessions() as session:
                connection = await session.connection(execution_options=_one_statement(session))
                await connection.execute(
                    delete(self._outbox).where(
                        among(session, self._outbox.c.id, [row.id for row in sent])
                    )
                )
                await session.commit()
            self._gauges_stale = True
        if parked:
            now = utc_now()
            async with self._sessions() as session, session.begin():
                for row, error in parked:
                    await session.execute(
                        update(self._outbox)
                        .where(self._outbox.c.id == row.id)
                        .values(parked_at=now, park_reason=_reason(error))
                    )
        for row in sent:
            self._metrics.outbox_published.labels(row.topic).inc()
        for row, error in parked:
            self._metrics.outbox_parked.labels(row.topic).inc()
            # Ids, topic, size and the client's reason only: the payload holds personal data.
            _logger.error(
                "outbox event parked: the broker can never accept it; the events behind it "
                "flow on, this one waits for an operator",
                extra={
                    "event_id": row.event_id,
                    "topic": row.topic,
                    "size_bytes": row.size,
                    "reason": _reason(error),
                },
            )

    async def pending_count(self) -> int:
        """How many rows wait to be published (parked rows excluded)."""
        return await count_unsent(self._sessions, self._outbox)

    async def backlog(self) -> OutboxBacklog:
        """The oldest waiting row and the parked count, as the table holds them now."""
        return await read_backlog(self._sessions, self._outbox)


def _unsent_query(outbox: Table, limit: int) -> Select[Any]:
    return (
        select(
            outbox.c.id,
            outbox.c.event_id,
            outbox.c.topic,
            outbox.c.message_key,
            outbox.c.payload,
            outbox.c.partition,
            outbox.c.sequence,
        )
        .where(outbox.c.sent_at.is_(None), outbox.c.parked_at.is_(None))
        .order_by(outbox.c.id)
        .limit(limit)
    )


def _one_statement(session: AsyncSession) -> dict[str, Any]:
    # A single statement needs no explicit transaction: on PostgreSQL autocommit saves the
    # BEGIN and COMMIT round trips (asyncpg runs it in an implicit transaction of its own).
    if session.get_bind().dialect.name == "postgresql":
        return dict(AUTOCOMMIT)
    return {}


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]
