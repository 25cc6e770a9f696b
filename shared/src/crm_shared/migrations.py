"""Alembic plumbing every service shares: the async env and the upgrade command."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from crm_shared._db import create_engine


def alembic_config(service_dir: Path, database_url: str | None = None) -> Config:
    """A service's Alembic configuration; the URL comes from its settings unless given."""
    config = Config(str(service_dir / "alembic.ini"))
    config.set_main_option("script_location", str(service_dir / "migrations"))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    return config


def upgrade(service_dir: Path, database_url: str | None = None) -> None:
    """Apply every migration of the service not yet applied."""
    command.upgrade(alembic_config(service_dir, database_url), "head")


def run_env(target_metadata: MetaData, default_url: str) -> None:
    """The body of a service's ``migrations/env.py``: run migrations online, async."""
    config = context.config
    url = config.attributes.get("database_url") or default_url

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite alters tables by copying them; batch mode does that for us.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_engine(url)
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run_async())
