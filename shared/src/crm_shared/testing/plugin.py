"""Pytest fixtures: the embedded broker, embedded PostgreSQL, and a database URL per backend."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from crm_shared.testing._broker import EmbeddedBroker
from crm_shared.testing._postgres import EmbeddedPostgres
from crm_shared.testing._templates import forget_postgres_server, register_fresh_postgres

_database_numbers = itertools.count()


@pytest.fixture
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """An embedded broker of the test's own (in memory, ~60 ms to start).

    A service under test joins with a new consumer group and reads its topics from the
    beginning; on a broker shared by the session it would first wade through every earlier
    test's events (a CDNOW replay is 6,919 orders).
    """
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "broker.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL server for the test session (not flushing to disk)."""
    server = EmbeddedPostgres(durable=False)
    server.start()
    yield server
    forget_postgres_server(server)
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
        return
    server: EmbeddedPostgres = request.getfixturevalue("postgres_server")
    url = await server.create_database(f"test_{next(_database_numbers)}")
    # Fresh: a service app started on it gets a copy of the migrated template (see running_app).
    yield register_fresh_postgres(url, server)


@pytest.fixture
async def postgres_url(postgres_server: EmbeddedPostgres) -> str:
    """A fresh, empty PostgreSQL database."""
    url = await postgres_server.create_database(f"test_{next(_database_numbers)}")
    return register_fresh_postgres(url, postgres_server)
