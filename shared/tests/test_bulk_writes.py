"""Whole-batch writes (`BulkWrite`, `BulkUpdate`, `among`) do what the per-row statements did,
on SQLite and PostgreSQL: upserts, guarded upserts, counters, JSON columns, plain inserts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Column, Integer, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared import (
    BulkUpdate,
    BulkWrite,
    Json,
    UtcDateTime,
    among,
    create_engine,
    create_session_factory,
    new_metadata,
)

METADATA = new_metadata()
DOCS = Table(
    "docs",
    METADATA,
    Column("key", String(36), primary_key=True),
    Column("as_of", UtcDateTime, nullable=False),
    Column("body", Json, nullable=True),
    Column("hits", Integer, nullable=False),
)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

UPSERT = BulkWrite(DOCS, ("key", "as_of", "body", "hits"), conflict=("key",), update=("as_of",))
NEWER = BulkWrite(
    DOCS,
    ("key", "as_of", "body", "hits"),
    conflict=("key",),
    update=("as_of", "body"),
    where="docs.as_of < excluded.as_of",
    encoded=frozenset({"body"}),
)
COUNT = BulkWrite(DOCS, ("key", "as_of", "body", "hits"), conflict=("key",), add=("hits",))
KEEP = BulkWrite(DOCS, ("key", "as_of", "body", "hits"), conflict=("key",))
SKIP = BulkWrite(DOCS, ("key", "as_of", "body", "hits"), skip_any_conflict=True)
RENUMBER = BulkUpdate(DOCS, ("key",), ("hits", "as_of"))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    yield engine
    await engine.dispose()


async def write(engine: AsyncEngine, how: BulkWrite | BulkUpdate, rows: list[Any]) -> None:
    async with create_session_factory(engine)() as session, session.begin():
        await how.run(session, rows)


async def stored(engine: AsyncEngine) -> dict[str, tuple[datetime, Any, int]]:
    async with engine.connect() as connection:
        rows = (await connection.execute(select(DOCS))).all()
    return {key: (as_of, body, hits) for key, as_of, body, hits in rows}


async def test_an_upsert_inserts_new_keys_and_updates_only_the_named_columns(
    engine: AsyncEngine,
) -> None:
    await write(engine, UPSERT, [("a", T0, {"n": [1, 2]}, 1), ("b", T0, None, 2)])
    later = T0 + timedelta(hours=1)
    await write(engine, UPSERT, [("a", later, {"n": []}, 9), ("c", later, "text", 3)])

    assert await stored(engine) == {
        "a": (later, {"n": [1, 2]}, 1),  # as_of updated; body and hits kept
        "b": (T0, None, 2),
        "c": (later, "text", 3),
    }


async def test_a_guarded_upsert_never_lets_an_older_row_replace_a_newer_one(
    engine: AsyncEngine,
) -> None:
    later = T0 + timedelta(hours=1)
    await write(engine, NEWER, [("a", later, '{"v":"new"}', 0), ("b", T0, '{"v":"old"}', 0)])
    await write(engine, NEWER, [("a", T0, '{"v":"stale"}', 0), ("b", later, '{"v":"fresh"}', 0)])

    docs = await stored(engine)
    assert docs["a"][:2] == (later, {"v": "new"})
    assert docs["b"][:2] == (later, {"v": "fresh"})


async def test_counters_add_and_a_plain_conflict_keeps_the_row(engine: AsyncEngine) -> None:
    await write(engine, COUNT, [("a", T0, None, 2), ("b", T0, None, 5)])
    await write(engine, COUNT, [("a", T0, None, 3), ("b", T0, None, -5)])
    await write(engine, KEEP, [("a", T0, None, 100), ("c", T0, None, 1)])
    await write(engine, SKIP, [("a", T0, None, 100), ("d", T0, None, 4)])

    assert {key: hits for key, (_, _, hits) in (await stored(engine)).items()} == {
        "a": 5,
        "b": 0,
        "c": 1,
        "d": 4,
    }


async def test_an_update_by_key_gives_each_row_its_own_values(engine: AsyncEngine) -> None:
    await write(engine, UPSERT, [(key, T0, None, 0) for key in ("a", "b", "c")])
    later = T0 + timedelta(days=1)
    await write(engine, RENUMBER, [("a", 7, later), ("c", 8, T0), ("missing", 9, T0)])

    docs = await stored(engine)
    assert {key: (hits, as_of) for key, (as_of, _, hits) in docs.items()} == {
        "a": (7, later),
        "b": (0, T0),
        "c": (8, T0),
    }


async def test_among_finds_the_keys_whatever_their_number(engine: AsyncEngine) -> None:
    await write(engine, UPSERT, [(f"k{i}", T0, None, i) for i in range(30)])
    async with create_session_factory(engine)() as session:
        for wanted in (["k1"], [f"k{i}" for i in range(0, 40, 3)], []):
            query = select(DOCS.c.key).where(among(session, DOCS.c.key, wanted))
            found = await session.scalars(query)
            assert set(found) == {key for key in wanted if int(key[1:]) < 30}
