"""A fresh test database gets a copy of a template migrated once; any other one is left alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from crm_shared import create_engine
from crm_shared.testing._templates import fill_from_template

# What the migration stands-in did, by URL: a template is migrated once, copies never are.
MIGRATED: list[str] = []


def migrate(database_url: str) -> None:
    """A one-table 'migration' that records each run."""
    MIGRATED.append(database_url)
    asyncio.run(_execute(database_url, "CREATE TABLE marker (id INTEGER PRIMARY KEY)"))


async def _execute(database_url: str, statement: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def _tables(database_url: str) -> set[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: set(sync.dialect.get_table_names(sync)))
    finally:
        await engine.dispose()
    return names


async def test_fresh_databases_get_the_migrated_schema_and_the_migration_runs_once(
    database_url: str, tmp_path: Path
) -> None:
    assert await fill_from_template(migrate, database_url)
    assert await _tables(database_url) == {"marker"}
    other = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    assert await fill_from_template(migrate, other)
    # Both templates exist by now: further fresh databases are copies, never migrated.
    runs = len(MIGRATED)
    third = f"sqlite+aiosqlite:///{tmp_path / 'third.db'}"
    assert await fill_from_template(migrate, third)
    assert await _tables(other) == await _tables(third) == {"marker"}
    assert len(MIGRATED) == runs
    assert all(url not in MIGRATED for url in (database_url, other, third))


async def test_a_database_that_is_not_fresh_is_left_to_the_migration(
    database_url: str, tmp_path: Path
) -> None:
    await _execute(database_url, "CREATE TABLE own_rows (id INTEGER PRIMARY KEY)")
    assert not await fill_from_template(migrate, database_url)
    assert await _tables(database_url) == {"own_rows"}
    # An existing SQLite file is not fresh either, even when empty of tables.
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"")
    assert not await fill_from_template(migrate, f"sqlite+aiosqlite:///{existing}")
    assert existing.read_bytes() == b""
