"""A ReadCache hearing changes on PostgreSQL: other sessions' NOTIFY, this engine's NOTICEs.

A plain table with a trigger speaking the protocol of crm_shared._read_cache_changes stands in
for a service's tables: the keys each statement touched, or every key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared import ReadCache, create_engine
from crm_shared._read_cache_changes import follow_changes, invalidate_on_local_writes

CHANNEL = "boxes_changes"
pytestmark = pytest.mark.postgres

_SCHEMA = (
    "CREATE TABLE boxes (key text PRIMARY KEY, label text)",
    f"""
    CREATE FUNCTION boxes_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        payload text := (SELECT json_agg(DISTINCT key)::text FROM new_rows);
    BEGIN
        IF (SELECT count(*) FROM new_rows) > 2 THEN
            payload := '';  -- too many to name: every key
        END IF;
        PERFORM pg_notify('{CHANNEL}', payload);
        IF current_setting('crm.read_cache_notices', true) = 'on' THEN
            RAISE NOTICE USING MESSAGE = '{CHANNEL}', DETAIL = payload;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE TRIGGER boxes_inserted AFTER INSERT ON boxes REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION boxes_changed()",
)


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_url)
    async with engine.begin() as connection:
        for statement in _SCHEMA:
            await connection.execute(text(statement))
    try:
        yield engine
    finally:
        await engine.dispose()


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after 30 s."""
    for _ in range(1500):
        if condition():
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"never happened: {what}")


def filled(*keys: str) -> ReadCache:
    cache = ReadCache(ttl_seconds=300, max_entries=100)
    cache.set_listening(True)
    for key in keys:
        cache.put(key, key.encode(), cache.generation())
    return cache


async def insert(engine: AsyncEngine, *keys: str) -> None:
    async with engine.begin() as connection:
        for key in keys:  # one statement per key
            await connection.execute(text("INSERT INTO boxes VALUES (:key, 'x')"), {"key": key})


async def test_this_engine_s_writes_forget_their_keys_once_committed(engine: AsyncEngine) -> None:
    cache = filled("a", "b", "c")
    other = filled("a", "b")  # a second cache on the same engine, another channel
    invalidate_on_local_writes(engine, CHANNEL, cache)
    invalidate_on_local_writes(engine, "other_changes", other)

    await insert(engine, "a", "b")
    # No waiting: the statements' notices were heard before the connection came back.
    assert [cache.get(key) for key in "abc"] == [None, None, b"c"]
    assert (cache.invalidations, cache.key_invalidations) == (1, 2)  # 1: set_listening
    assert [other.get(key) for key in "ab"] == [b"a", b"b"]  # its channel was not named

    async with engine.begin() as connection:  # three rows in one statement: every key
        await connection.execute(
            text("INSERT INTO boxes VALUES ('d', 'x'), ('e', 'x'), ('f', 'x')")
        )
    assert cache.get("c") is None
    assert cache.invalidations == 2


async def test_another_session_s_writes_reach_a_follower(
    engine: AsyncEngine, postgres_url: str
) -> None:
    cache = ReadCache(ttl_seconds=300, max_entries=100)
    stop = asyncio.Event()
    following = asyncio.create_task(follow_changes(engine, CHANNEL, cache, stop))
    try:
        await wait_until(lambda: cache.enabled, "the follower listens")
        for key in "ab":
            cache.put(key, key.encode(), cache.generation())
        writer = create_engine(postgres_url)  # its writes are not this engine's
        try:
            await insert(writer, "a")
        finally:
            await writer.dispose()
        await wait_until(lambda: cache.get("a") is None, "the change of a is heard")
        assert cache.get("b") == b"b"
        assert cache.key_invalidations == 1
    finally:
        stop.set()
        await asyncio.wait_for(following, 30)
    assert not cache.enabled
