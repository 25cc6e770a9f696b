"""The PostgreSQL pool hands out live connections without a round trip per checkout.

`pool_pre_ping` sent BEGIN, ";" and ROLLBACK before every checkout (over a quarter of a 360
read's CPU); the engine now asks the driver whether the server closed the socket instead.
These tests run against the embedded PostgreSQL: the server ends a pooled connection's
session, as a restart or an outage does, and the next checkout must still work.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared import create_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url, pool_size=2)
    yield engine
    await engine.dispose()


async def _backend_and_driver(engine: AsyncEngine) -> tuple[int, Any]:
    async with engine.connect() as connection:
        pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        raw = await connection.get_raw_connection()
        return pid, raw.driver_connection


async def _until_closed(driver: asyncpg.Connection) -> None:
    # The driver learns of the closed socket when the event loop reads its end.
    for _ in range(1_000):
        if driver.is_closed():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the driver never saw the server end the session")


async def test_a_connection_whose_session_the_server_ended_is_replaced_at_checkout(
    engine: AsyncEngine, postgres_url: str
) -> None:
    first_pid, first_driver = await _backend_and_driver(engine)
    other = create_engine(postgres_url)
    try:
        async with other.connect() as connection:
            ended = await connection.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid}
            )
            assert ended.scalar_one() is True
    finally:
        await other.dispose()
    await _until_closed(first_driver)

    # Without the check the pool would hand out the dead connection and this would raise.
    second_pid, second_driver = await _backend_and_driver(engine)

    assert second_pid != first_pid
    assert second_driver is not first_driver


async def test_every_pooled_connection_older_than_a_dead_one_is_replaced(
    engine: AsyncEngine, postgres_url: str
) -> None:
    # Two connections in the pool; the server ends both (a restart ends every session).
    async with engine.connect() as one, engine.connect() as two:
        pids = {
            (await one.execute(text("SELECT pg_backend_pid()"))).scalar_one(),
            (await two.execute(text("SELECT pg_backend_pid()"))).scalar_one(),
        }
        drivers = [
            (await one.get_raw_connection()).driver_connection,
            (await two.get_raw_connection()).driver_connection,
        ]
    other = create_engine(postgres_url)
    try:
        async with other.connect() as connection:
            for pid in pids:
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()
    for driver in drivers:
        await _until_closed(driver)

    async with engine.connect() as one, engine.connect() as two:
        new_pids = {
            (await one.execute(text("SELECT pg_backend_pid()"))).scalar_one(),
            (await two.execute(text("SELECT pg_backend_pid()"))).scalar_one(),
        }

    assert not new_pids & pids


async def test_taking_a_pooled_connection_sends_nothing_to_the_server(
    engine: AsyncEngine,
) -> None:
    _, driver = await _backend_and_driver(engine)  # now idle in the pool
    sent: list[str] = []
    driver.add_query_logger(lambda record: sent.append(record.query))

    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT 41 + 1"))).scalar_one() == 42
        assert (await connection.get_raw_connection()).driver_connection is driver

    # Only the transaction SQLAlchemy wraps the statement in (asyncpg's query logger does
    # not see statements it runs as prepared ones, like the SELECT); no ping before it.
    assert sent == ["BEGIN;", "ROLLBACK;"]
