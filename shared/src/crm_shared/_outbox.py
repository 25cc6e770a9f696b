"""Transactional outbox: events are rows written with the state change, then published."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_contracts import CloudEvent, encode_event
from crm_shared._bulk import BulkWrite, among
from crm_shared._clock import utc_now
from crm_shared._db import PlumbingTables
from crm_shared._metrics import ServiceMetrics
from crm_shared._outbox_delivery import NotAttempted, OutboxRow, deliver, is_unpublishable
from crm_shared._outbox_health import OutboxBacklog, count_unsent, read_backlog, record_backlog
from crm_shared._outbox_sequences import OutboxSequencer

_logger = logging.getLogger("crm.outbox")
OUTBOX_ADDED = "crm.outbox_added"
_PRUNE_EVERY_SECONDS = 300.0
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


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"outbox-relay:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class OutboxRelay:
    """Publishes unsent outbox rows in id order and marks them sent.

    It selects rows *not yet sent* rather than rows with an id above the last one seen:
    ids are drawn before commit, so a transaction that commits late holds a lower id than
    rows already published, and an id watermark would skip it forever. On PostgreSQL an
    advisory lock lets one relay per service run at a time, keeping per-key order.

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
        retention: timedelta = timedelta(days=1),
    ) -> None:
        self._name = name
        self._engine = engine
        self._sessions = session_factory
        self._outbox = tables.outbox
        self._producer = producer
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._retention = retention
        self._sequencer = OutboxSequencer(
            session_factory=session_factory, tables=tables, producer=producer
        )
        self._wake = asyncio.Event()
        self._stopping = False
        self._gauges_at = 0.0

    def wake(self) -> None:
        """Publish soon: called after a commit that added outbox rows."""
        self._wake.set()

    def stop(self) -> None:
        """Ask the loop to finish after the current batch."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Relay until stopped; failures back off and retry, rows stay unsent meanwhile."""
        backoff = 0.2
        last_prune = 0.0
        while not self._stopping:
            try:
                async with self._leadership() as leading:
                    while not self._stopping and await leading():
                        published = await self.publish_pending()
                        backoff = 0.2
                        if time.monotonic() - last_prune > _PRUNE_EVERY_SECONDS:
                            await self.prune_sent()
                            last_prune = time.monotonic()
                        await self._refresh_gauges(force=published == 0)
                        if published < self._batch_size:
                            await self._idle()
                    if not self._stopping:
                        await self._refresh_gauges()
                        await self._idle()
            except asyncio.CancelledError:
                raise
            except Exception:
                _logger.warning("outbox relay failed; retrying", exc_info=True)
                with contextlib.suppress(Exception):
                    await self._refresh_gauges()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._poll_interval)
        self._wake.clear()

    async def _refresh_gauges(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._gauges_at < _GAUGES_EVERY_SECONDS:
            return
        await self.refresh_gauges()

    async def refresh_gauges(self) -> OutboxBacklog:
        """Set the pending, oldest-age and parked gauges from the table; return the backlog."""
        backlog = await read_backlog(self._sessions, self._outbox)
        pending = await count_unsent(self._sessions, self._outbox)
        record_backlog(self._metrics, backlog, pending, utc_now())
        self._gauges_at = time.monotonic()
        return backlog

    @contextlib.asynccontextmanager
    async def _leadership(self) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
        """Yield a check telling whether this relay may publish now."""
        if self._engine.dialect.name != "postgresql":

            async def always() -> bool:
                return True

            yield always
            return
        key = _lock_key(self._name)
        async with self._engine.connect() as connection:
            held = bool(await connection.scalar(select(func.pg_try_advisory_lock(key))))
            await connection.commit()

            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection  # an asyncpg.Connection

            async def still_held() -> bool:
                # The lock lives as long as this connection: a query that fails here means
                # the lock is gone too, and the error sends us back to re-acquire it. One
                # round trip on the driver (asyncpg runs it in autocommit), not BEGIN, SELECT
                # and COMMIT through SQLAlchemy before every batch.
                if held:
                    await driver.fetchval("SELECT 1")
                return held

            try:
                yield still_held
            finally:
                if held:
                    with contextlib.suppress(Exception):
                        await connection.scalar(select(func.pg_advisory_unlock(key)))

    async def publish_pending(self) -> int:
        """Publish one batch of unsent rows; return how many were published or parked.

        Raises the first error that may heal, after recording what the batch did achieve:
        every acknowledged row is marked sent, every unpublishable one parked, whatever their
        place in the batch.
        """
        unsent = await self._unsent_batch()
        if not unsent:
            return 0
        # Each row's partition and sequence are committed before its first send, so every
        # re-send of it (after a crash, after a timeout) carries the same stamp.
        rows, blocked = await self._sequencer.sequence(unsent)
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

    async def _unsent_batch(self) -> list[OutboxRow]:
        outbox = self._outbox
        async with self._sessions() as session, session.begin():
            result = await session.execute(
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
                .limit(self._batch_size)
            )
            return [OutboxRow(*row) for row in result.all()]

    async def _record(
        self, sent: Sequence[OutboxRow], parked: Sequence[tuple[OutboxRow, BaseException]]
    ) -> None:
        if not sent and not parked:
            return
        now = utc_now()
        async with self._sessions() as session, session.begin():
            if sent:
                await session.execute(
                    update(self._outbox)
                    .where(among(session, self._outbox.c.id, [row.id for row in sent]))
                    .values(sent_at=now)
                )
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

    async def prune_sent(self) -> int:
        """Delete rows published longer ago than the retention; return how many."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(self._outbox).where(
                    self._outbox.c.sent_at.is_not(None),
                    self._outbox.c.sent_at < utc_now() - self._retention,
                )
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def pending_count(self) -> int:
        """How many rows wait to be published (parked rows excluded)."""
        return await count_unsent(self._sessions, self._outbox)

    async def backlog(self) -> OutboxBacklog:
        """The oldest waiting row and the parked count, as the table holds them now."""
        return await read_backlog(self._sessions, self._outbox)


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500]
