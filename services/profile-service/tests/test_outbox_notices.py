"""A commit that adds outbox rows wakes the relay by NOTIFY, whichever process made it (issue 12).

The relay polls once an hour here, so a row written from outside the app (no in-process wake)
is published only if the outbox trigger's notice reaches the listening relay. PostgreSQL only:
SQLite has no LISTEN, and its relay polls.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from crm_contracts import ActivityRecorded, build_event, decode_event, encode_event
from crm_shared import (
    OutboxRelay,
    add_encoded_to_outbox,
    create_engine,
    create_session_factory,
    ensure_topics,
    new_metadata,
    plumbing_tables,
)
from crm_shared.testing import EmbeddedBroker, read_topic
from profile_testing import Api, app_settings, running_api

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

TABLES = plumbing_tables(new_metadata())
HOUR = 3600.0


@pytest.fixture
async def api(
    postgres_url: str, tmp_path: Path, kafka_broker: EmbeddedBroker
) -> AsyncIterator[Api]:
    settings = app_settings(
        postgres_url,
        kafka_enabled=True,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        service_name=f"profile-service-{tmp_path.name[-12:]}",
        outbox_poll_interval_seconds=HOUR,
        outbox_listening_poll_interval_seconds=HOUR,
    )
    async with running_api(settings) as running:
        yield running


async def wait_for(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 120
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_row_committed_by_another_process_is_published_on_its_notice(
    api: Api, postgres_url: str, kafka_broker: EmbeddedBroker
) -> None:
    relay: OutboxRelay = api.app.state.runtime.relay
    topic = f"test.notice-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_broker.bootstrap_servers, [topic], partitions=2)
    # Another process's engine: its commit cannot wake the relay in memory.
    engine = create_engine(postgres_url)
    sessions = create_session_factory(engine)

    async def listening() -> bool:
        return relay.listening

    async def unsent() -> int:
        async with sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(TABLES.outbox)) or 0)

    async def stage(n: int) -> str:
        at = datetime(2026, 12, 7, 5, n, tzinfo=UTC)
        event = build_event(
            ActivityRecorded(
                customer_id=f"notice-{n}",
                activity_id=f"a-{n}",
                activity_type="page_view",
                occurred_at=at,
            ),
            source="/tests",
            time=at,
        )
        async with sessions() as session, session.begin():
            await add_encoded_to_outbox(
                session, TABLES, [(event.id, topic, event.subject, encode_event(event).decode())]
            )
        return event.id

    try:
        await wait_for(listening, "the relay to LISTEN")
        first = await stage(1)
        await wait_for(lambda: _is_zero(unsent()), "the first row to be published")
        # The gauges read again after the publish, the next poll is an hour away.
        await wait_for(lambda: _true(relay.waits_for_notice), "the relay to wait for notices")
        noticed = relay.notices
        # Published only if the notice wakes the relay: its poll is an hour away.
        second = await stage(2)
        await wait_for(lambda: _is_zero(unsent()), "the second row to be published")
        assert relay.notices > noticed
        records = await read_topic(kafka_broker.bootstrap_servers, topic, expect=2)
        assert sorted(decode_event(r.value or b"").id for r in records) == sorted([first, second])
    finally:
        await engine.dispose()


async def _true(value: bool) -> bool:
    return value


async def _is_zero(count: Awaitable[int]) -> bool:
    return await count == 0
