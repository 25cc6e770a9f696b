"""RawRead: one statement, the same rows on SQLite and on PostgreSQL's driver path.

On PostgreSQL the statement runs on the asyncpg connection taken from the engine's pool,
without SQLAlchemy's result processing; these tests pin what callers rely on: literals the
statement binds itself, parameters in any order, aware UTC timestamps, JSON cast to text,
and the connection going back to the pool (or being replaced) whatever happens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import JSON, Column, MetaData, String, Table, Text, bindparam, cast, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared import RawRead, UtcDateTime, create_engine

_metadata = MetaData()
_things = Table(
    "things",
    _metadata,
    Column("id", String(20), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("owner", String(20), nullable=False),
    Column("doc", JSON(none_as_null=True), nullable=True),
    Column("at", UtcDateTime, nullable=False),
)
_AT = datetime(2026, 11, 20, 9, 30, 15, 123456, tzinfo=UTC)

_READ = RawRead(
    select(_things.c.id, cast(_things.c.doc, Text).label("doc"), _things.c.at)
    .where(
        _things.c.owner == bindparam("owner", type_=Text),
        _things.c.kind == "visible",  # a literal: bound by the statement, not the caller
    )
    .order_by(_things.c.id)
    .limit(bindparam("limit"))
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as connection:
        await connection.run_sync(_metadata.create_all)
        await connection.execute(
            _things.insert(),
            [
                {"id": "a", "kind": "visible", "owner": "ann", "doc": {"n": 1}, "at": _AT},
                {"id": "b", "kind": "hidden", "owner": "ann", "doc": None, "at": _AT},
                {"id": "c", "kind": "visible", "owner": "ann", "doc": None, "at": _AT},
                {"id": "d", "kind": "visible", "owner": "bob", "doc": [], "at": _AT},
            ],
        )
    yield engine
    await engine.dispose()


async def test_rows_are_the_same_on_both_databases(engine: AsyncEngine) -> None:
    rows = await _READ.rows(engine, limit=5, owner="ann")

    assert [(row["id"], row["at"]) for row in rows] == [("a", _AT), ("c", _AT)]
    assert isinstance(rows[0]["doc"], str)  # the stored text, decoded by no driver
    assert json.loads(rows[0]["doc"]) == {"n": 1}
    assert rows[1]["doc"] is None
    assert rows[0]["at"].utcoffset() is not None
    assert [row["id"] for row in await _READ.rows(engine, limit=1, owner="ann")] == ["a"]
    assert await _READ.rows(engine, limit=5, owner="nobody") == []


async def test_the_connection_goes_back_to_the_pool_after_a_read_and_a_failure(
    engine: AsyncEngine,
) -> None:
    failing = RawRead(select(text("missing.id")).select_from(text("missing")))
    for _ in range(3):  # more reads than the pool holds connections
        await _READ.rows(engine, limit=5, owner="ann")
    with pytest.raises(Exception, match=r"(?i)missing"):
        await failing.rows(engine)

    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert len(await _READ.rows(engine, limit=5, owner="ann")) == 2


@pytest.mark.postgres
async def test_a_connection_the_server_ended_is_replaced(postgres_url: str) -> None:
    engine = create_engine(postgres_url, pool_size=1)
    pid_of = RawRead(select(text("pg_backend_pid() AS pid")))
    try:
        first = (await pid_of.rows(engine))[0]["pid"]
        other = create_engine(postgres_url)
        try:
            async with other.connect() as connection:
                await connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        finally:
            await other.dispose()
        second = first
        for _ in range(100):
            try:
                second = (await pid_of.rows(engine))[0]["pid"]
            except Exception:  # only the read that met the dead socket may fail
                continue
            break
        assert second != first
    finally:
        await engine.dispose()
