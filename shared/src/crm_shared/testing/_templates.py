"""Migrated template databases: each service is migrated once per test session, then copied.

Running every Alembic migration for each test's fresh database costs a few tenths of a second
per test and backend (hundreds of tests). A copy of an already migrated database is the same
schema, byte for byte on SQLite and page for page on PostgreSQL (``CREATE DATABASE ...
TEMPLATE``), for a fraction of that. Only databases known to be fresh are filled this way: a
SQLite file that does not exist yet, or a PostgreSQL database that the test fixtures created
empty and that still holds no table. Any other database is migrated as before.
"""

from __future__ import annotations

import asyncio
import atexit
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from crm_shared.testing._postgres import EmbeddedPostgres

Migrate = Callable[[str], None]

# Fresh PostgreSQL databases handed out by the fixtures, by URL, with their server.
_fresh_postgres: dict[str, EmbeddedPostgres] = {}
# Migrated templates: SQLite files by migrate function, PostgreSQL databases by both.
_sqlite_templates: dict[str, Path] = {}
_postgres_templates: dict[tuple[str, int], str] = {}
_template_dir: list[Path] = []


def register_fresh_postgres(url: str, server: EmbeddedPostgres) -> str:
    """Note that `url` names a database `server` has just created empty; return `url`."""
    _fresh_postgres[url] = server
    return url


def forget_postgres_server(server: EmbeddedPostgres) -> None:
    """Drop what is known about `server`'s databases (it is stopping)."""
    for url in [url for url, owner in _fresh_postgres.items() if owner is server]:
        del _fresh_postgres[url]
    for key in [key for key in _postgres_templates if key[1] == id(server)]:
        del _postgres_templates[key]


async def fill_from_template(migrate: Migrate, database_url: str) -> bool:
    """Give a fresh database the schema `migrate` would, by copying a migrated template.

    Returns False (and touches nothing) when the database is not known to be fresh; the
    caller then migrates it itself.
    """
    server = _fresh_postgres.pop(database_url, None)
    if server is not None:
        return await _fill_postgres(server, migrate, database_url)
    target = _sqlite_path(database_url)
    if target is None or target.exists():
        return False
    template = await _sqlite_template(migrate)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return True


def _key(migrate: Migrate) -> str:
    return f"{migrate.__module__}.{migrate.__qualname__}"


def _sqlite_path(database_url: str) -> Path | None:
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database)
    return path if path.is_absolute() else None


async def _sqlite_template(migrate: Migrate) -> Path:
    key = _key(migrate)
    if key not in _sqlite_templates:
        if not _template_dir:
            _template_dir.append(Path(tempfile.mkdtemp(prefix="crm-templates-")))
            atexit.register(shutil.rmtree, _template_dir[0], ignore_errors=True)
        path = _template_dir[0] / f"{re.sub(r'[^A-Za-z0-9_]', '_', key)}.db"
        path.unlink(missing_ok=True)
        # Alembic's env runs its own event loop: give it a thread without one.
        await asyncio.to_thread(migrate, f"sqlite+aiosqlite:///{path}")
        # Everything into the main file, so a plain copy of it is the whole database.
        with sqlite3.connect(path) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _sqlite_templates[key] = path
    return _sqlite_templates[key]


async def _fill_postgres(server: EmbeddedPostgres, migrate: Migrate, database_url: str) -> bool:
    name = make_url(database_url).database
    assert name is not None
    if not await _has_no_tables(database_url):
        return False
    template = await _postgres_template(server, migrate)
    admin = await asyncpg.connect(server.admin_url)
    try:
        try:
            # Without FORCE: a test still connected to its database keeps it, and migrates.
            await admin.execute(f'DROP DATABASE "{name}"')
        except asyncpg.ObjectInUseError:
            return False
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return True


async def _has_no_tables(database_url: str) -> bool:
    url = make_url(database_url).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'"
        )
    finally:
        await connection.close()
    return int(tables) == 0


async def _postgres_template(server: EmbeddedPostgres, migrate: Migrate) -> str:
    key = (_key(migrate), id(server))
    if key not in _postgres_templates:
        slug = re.sub(r"[^a-z0-9_]", "_", _key(migrate).lower())
        name = f"template_{len(_postgres_templates)}_{slug}"[:63]
        url = await server.create_database(name)
        await asyncio.to_thread(migrate, url)
        _postgres_templates[key] = name
    return _postgres_templates[key]
