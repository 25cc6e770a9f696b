"""The inbox records a batch's event ids and tells which are new, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared import create_engine, create_session_factory, new_metadata, plumbing_tables
from crm_shared._inbox import record_new_events

METADATA = new_metadata()
TABLES = plumbing_tables(METADATA)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    yield engine
    await engine.dispose()


async def record(engine: AsyncEngine, consumer: str, ids: list[str]) -> set[str]:
    async with create_session_factory(engine)() as session, session.begin():
        return await record_new_events(session, TABLES.processed_events, consumer, ids, NOW)


async def test_only_ids_never_recorded_are_new(engine: AsyncEngine) -> None:
    assert await record(engine, "orders", ["e-1", "e-2"]) == {"e-1", "e-2"}

    # e-2 again, e-3 twice in one batch: e-3 is new once, e-2 not at all.
    assert await record(engine, "orders", ["e-2", "e-3", "e-3", "e-4"]) == {"e-3", "e-4"}
    # Another consumer of the same service has an inbox of its own.
    assert await record(engine, "scores", ["e-1"]) == {"e-1"}

    async with engine.connect() as connection:
        rows = await connection.scalar(select(func.count()).select_from(TABLES.processed_events))
    assert rows == 5


async def test_a_rolled_back_batch_leaves_its_ids_new(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)

    async def failing_batch() -> None:
        async with sessions() as session, session.begin():
            await record_new_events(session, TABLES.processed_events, "orders", ["e-1"], NOW)
            raise RuntimeError("the batch's effects failed")

    with pytest.raises(RuntimeError):
        await failing_batch()

    assert await record(engine, "orders", ["e-1"]) == {"e-1"}


@pytest.mark.postgres
async def test_two_transactions_recording_one_id_apply_it_once(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    sessions = create_session_factory(engine)
    try:
        async with sessions() as first, first.begin():
            assert await record_new_events(
                first, TABLES.processed_events, "orders", ["e-1"], NOW
            ) == {"e-1"}
            # A second replica records the same id meanwhile: it waits for the first's commit.
            second = asyncio.create_task(record(engine, "orders", ["e-1", "e-2"]))
            await asyncio.sleep(0.3)
            assert not second.done()
        assert await second == {"e-2"}
    finally:
        await engine.dispose()
