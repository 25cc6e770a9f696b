"""A service's moving parts (database, producer, relay, consumers), started and stopped in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Generic

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import Depends, FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from crm_contracts import dead_letter_topic
from crm_shared._consumer import (
    Decoder,
    EventConsumer,
    Finisher,
    MessageT,
)
from crm_shared._db import (
    READ_ONLY,
    PlumbingTables,
    create_engine,
    create_session_factory,
    database_is_reachable,
)
from crm_shared._decoding import cloud_event_decoder
from crm_shared._health import ReadinessCheck, ReadinessResult
from crm_shared._kafka import (
    FetchPacing,
    broker_is_reachable,
    create_consumer,
    create_producer,
    ensure_topics,
)
from crm_shared._metrics import ServiceMetrics
from crm_shared._outbox import OUTBOX_ADDED, OutboxRelay
from crm_shared._outbox_health import outbox_readiness
from crm_shared._schedule import run_periodically
from crm_shared._settings import ServiceSettings

_logger = logging.getLogger("crm.runtime")


@dataclass(frozen=True)
class Subscription(Generic[MessageT]):
    """Topics a service consumes and what applies each consumed batch of their messages."""

    name: str
    topics: Sequence[str]
    apply_batch: Finisher[MessageT]
    # Called after each committed batch that applied new events (e.g. to wake a loop that
    # acts on what the batch stored, instead of waiting for its next interval).
    after_batch: Callable[[], None] | None = None
    # How a record becomes a message; by default a CloudEvent, whose order.* events are judged
    # by the deployment's order policy (settings.order_policy) before any handler sees them.
    decode: Decoder[MessageT] | None = None


@dataclass
class ServiceRuntime:
    """Everything a running service holds; built in the app's lifespan, never at import."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    tables: PlumbingTables
    metrics: ServiceMetrics
    producer: AIOKafkaProducer | None = None
    relay: OutboxRelay | None = None
    consumers: list[EventConsumer[Any]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    def wake_relay(self) -> None:
        """Tell the relay a commit added outbox rows."""
        if self.relay is not None:
            self.relay.wake()

    async def is_database_ready(self) -> bool:
        """Readiness check for the database."""
        return await database_is_reachable(self.engine)

    async def is_broker_ready(self) -> bool:
        """Readiness check for the broker (true when Kafka is switched off)."""
        return True if self.producer is None else await broker_is_reachable(self.producer)

    async def is_outbox_flowing(self) -> ReadinessResult:
        """Readiness check for the relay: no row waits longer than the stuck-after setting."""
        stuck_after = timedelta(seconds=self.settings.outbox_stuck_after_seconds)
        return await outbox_readiness(self.sessions, self.tables.outbox, stuck_after=stuck_after)

    def background(self, coroutine_task: asyncio.Task[None]) -> None:
        """Own a background task so it is cancelled on shutdown."""
        self._tasks.append(coroutine_task)

    def every(
        self,
        name: str,
        interval_seconds: float,
        job: Callable[[], Awaitable[object]],
        *,
        wake: asyncio.Event | None = None,
    ) -> None:
        """Run `job` every `interval_seconds`, and soon after `wake` is set, until shutdown
        (which lets a running job end)."""
        loop = run_periodically(name, interval_seconds, job, stop=self.stopping, wake=wake)
        self.background(asyncio.create_task(loop, name=name))


@contextlib.asynccontextmanager
async def run_service(
    settings: ServiceSettings,
    tables: PlumbingTables,
    metrics: ServiceMetrics,
    *,
    produces: Sequence[str] = (),
    subscriptions: Sequence[Subscription[Any]] = (),
) -> AsyncIterator[ServiceRuntime]:
    """Start the database, producer, relay and consumers; on exit stop them, newest first."""
    engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
    runtime = ServiceRuntime(settings, engine, create_session_factory(engine), tables, metrics)
    try:
        if settings.kafka_enabled:
            await _start_kafka(runtime, produces, subscriptions)
        yield runtime
    finally:
        await _stop(runtime)


async def _start_kafka(
    runtime: ServiceRuntime, produces: Sequence[str], subscriptions: Sequence[Subscription[Any]]
) -> None:
    settings = runtime.settings
    group = settings.service_name
    consumed = [topic for sub in subscriptions for topic in sub.topics]
    topics = {*produces, *consumed, *(dead_letter_topic(t, group) for t in consumed)}
    security = settings.kafka_security  # TLS and SASL, the same for every client below
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        topics,
        partitions=settings.kafka_topic_partitions,
        security=security,
    )
    producer = create_producer(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        security=security,
        max_message_bytes=settings.kafka_max_message_bytes,
    )
    await producer.start()
    runtime.producer = producer
    runtime.relay = OutboxRelay(
        name=settings.service_name,
        engine=runtime.engine,
        session_factory=runtime.sessions,
        tables=runtime.tables,
        producer=producer,
        metrics=runtime.metrics,
        batch_size=settings.outbox_batch_size,
        poll_interval=settings.outbox_poll_interval_seconds,
        listening_poll_interval=settings.outbox_listening_poll_interval_seconds,
    )
    runtime.background(asyncio.create_task(runtime.relay.run(), name="outbox-relay"))
    judged_cloud_events = cloud_event_decoder(settings.order_policy)
    for subscription in subscriptions:
        kafka_consumer = create_consumer(
            (),  # subscribed by EventConsumer.start, which seeks to the stored offsets
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=group,
            client_id=f"{settings.service_name}-{subscription.name}",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            rebalance_timeout_ms=settings.kafka_rebalance_timeout_ms,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            security=security,
        )
        consumer = EventConsumer(
            name=subscription.name,
            topics=subscription.topics,
            consumer=kafka_consumer,
            producer=producer,
            session_factory=runtime.sessions,
            tables=runtime.tables,
            apply_batch=subscription.apply_batch,
            metrics=runtime.metrics,
            batch_size=settings.kafka_consumer_batch_size,
            after_commit=runtime.wake_relay,
            after_batch=subscription.after_batch,
            decode=subscription.decode or judged_cloud_events,
            pacing=FetchPacing(
                busy_ms=settings.kafka_fetch_max_wait_ms,
                idle_ms=max(
                    settings.kafka_idle_fetch_max_wait_ms, settings.kafka_fetch_max_wait_ms
                ),
            ),
        )
        await consumer.start()
        runtime.consumers.append(consumer)
        runtime.background(
            asyncio.create_task(_supervise(consumer, kafka_consumer), name=subscription.name)
        )


async def _supervise(consumer: EventConsumer[Any], kafka_consumer: AIOKafkaConsumer) -> None:
    # The loop only ends on stop(); anything else escaping it is a bug or a broker outage
    # beyond the client's own retries, so log it and resume: the failed loop pointed its
    # batch's partitions back at the batch, so nothing it had in hand is skipped.
    try:
        while True:
            try:
                await consumer.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                _logger.exception(
                    "consumer loop failed; restarting", extra={"consumer": consumer.name}
                )
                await asyncio.sleep(1.0)
    finally:
        await kafka_consumer.stop()


async def _stop(runtime: ServiceRuntime) -> None:
    runtime.stopping.set()
    for consumer in runtime.consumers:
        consumer.stop()
    if runtime.relay is not None:
        runtime.relay.stop()
    # Give loops a moment to finish the batch in hand, then cancel what is left.
    if runtime._tasks:
        _done, pending = await asyncio.wait(runtime._tasks, timeout=5)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if runtime.producer is not None:
        await runtime.producer.stop()
    await runtime.engine.dispose()


def runtime_of(request: Request) -> ServiceRuntime:
    """The running service's runtime."""
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    runtime = runtime_of(request)
    async with runtime.sessions() as session:
        async with session.begin():
            if request.method in _READING_METHODS:
                # Set before the first statement: it decides how the transaction begins.
                await session.connection(execution_options=_reading_options(session))
            yield session
        if session.info.get(OUTBOX_ADDED):
            runtime.wake_relay()


_READING_METHODS = frozenset({"GET", "HEAD"})


def _reading_options(session: AsyncSession) -> dict[str, object]:
    if session.get_bind().dialect.name == "postgresql":
        # Each statement of a read-committed transaction takes its own snapshot anyway, so
        # a read loses nothing without one, and saves the BEGIN and COMMIT round trips.
        return {READ_ONLY: True, "isolation_level": "AUTOCOMMIT"}
    return {READ_ONLY: True}


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
"""The request's session: one transaction, committed before the response is sent."""

RuntimeDep = Annotated[ServiceRuntime, Depends(runtime_of)]


def attach_runtime(app: FastAPI, runtime: ServiceRuntime) -> None:
    """Expose the runtime and its readiness checks to routes."""
    app.state.runtime = runtime
    checks: dict[str, ReadinessCheck] = {
        "database": runtime.is_database_ready,
        "broker": runtime.is_broker_ready,
    }
    if runtime.relay is not None:
        checks["outbox"] = runtime.is_outbox_flowing
        app.state.gauge_refreshes = [runtime.relay.refresh_gauges]
    app.state.readiness_checks = checks
