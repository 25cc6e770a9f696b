"""Async SQLAlchemy engine and sessions from a URL, for SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    event,
    exc,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")


def new_metadata() -> MetaData:
    """Return a MetaData with the constraint naming convention Alembic relies on."""
    return MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both backends (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        moment = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalise_database_url(url: str) -> str:
    """Pick the async driver for a plain ``postgresql://`` or ``sqlite://`` URL."""
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def upsert_into(session: AsyncSession, table: Any) -> Any:
    """An INSERT for ``table`` with ``on_conflict_do_update/nothing``, in the session's dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_sqlite(url: str) -> bool:
    """Whether the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """Create an async engine; SQLite gets WAL, foreign keys and write-locking transactions."""
    url = normalise_database_url(url)
    if not is_sqlite(url):
        # As many connections as before (pool_size plus as many again in overflow), but all
        # kept once opened: a connection over the pool's size used to be closed the moment it
        # came back, so bursts of requests opened and closed PostgreSQL sessions over and over
        # (a backend process, authentication and type set-up each time), which py-spy showed
        # as the next cost of a 360 read once the pre-ping was gone.
        engine = create_async_engine(url, pool_size=2 * pool_size, max_overflow=0, echo=echo)
        _replace_closed_connections(engine)
        return engine
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
    _configure_sqlite(engine)
    return engine


def _replace_closed_connections(engine: AsyncEngine) -> None:
    # Instead of `pool_pre_ping`, which on asyncpg costs three round trips per checkout
    # (BEGIN, ";", ROLLBACK: a third of a 360 read's CPU), the driver's own view of the
    # socket decides, for free. A restarted or stopped server ends its sessions, so the
    # driver has seen the socket close by the time the connection is taken from the pool;
    # as after a failed ping, the pool then drops it and every older connection and
    # connects anew. A connection that dies between checkout and its first statement fails
    # that statement, which the ping could not prevent either (it has the same window).
    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if dbapi_connection.driver_connection.is_closed():
            raise exc.InvalidatePoolError("the database server closed this connection")


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, issue BEGIN: the module's implicit
        # transactions break SAVEPOINT and would start deferred (read) transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front; a deferred transaction that later writes
        # fails with "database is locked" instead of waiting when another writer is active.
        # A transaction declared read-only (see READ_ONLY) needs no lock: WAL lets it read
        # while a writer works.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


READ_ONLY = "crm_read_only"
"""Execution option: this transaction only reads (SQLite then takes no write lock)."""


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """Open a session in a transaction that commits on success and rolls back on error."""
    async with session_factory() as session, session.begin():
        yield session


async def database_is_reachable(engine: AsyncEngine) -> bool:
    """Answer ``SELECT 1``; used by ``/readyz``."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@dataclass(frozen=True)
class PlumbingTables:
    """The tables every service has: outbox and its sequences, consumer positions, the inbox
    of events from outside producers, idempotency keys."""

    outbox: Table
    processed_events: Table
    idempotency_keys: Table
    consumer_offsets: Table
    consumed_sequences: Table
    outbox_sequences: Table


def plumbing_tables(metadata: MetaData, *, unread_indexes: bool = True) -> PlumbingTables:
    """Declare the plumbing tables on a service's metadata so its migrations include them.

    `unread_indexes=False` leaves out two indexes no query reads, each maintained on every
    order consumed or event published: the inbox's `processed_at` and the outbox's unique
    `event_id` (ids are UUIDv7s drawn per event, and consumers know a re-sent copy by its
    producer sequence, not by its id). A service drops them with a migration of its own.
    """
    outbox = Table(
        "outbox",
        metadata,
        Column("id", AutoIncrementId, primary_key=True, autoincrement=True),
        Column("event_id", String(36), nullable=False, unique=unread_indexes),
        Column("topic", String(249), nullable=False),
        Column("message_key", String(200), nullable=False),
        Column("payload", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("sent_at", UtcDateTime, nullable=True),
        # Set aside: the broker can never take this row (too large); an operator decides.
        Column("parked_at", UtcDateTime, nullable=True),
        Column("park_reason", String(500), nullable=True),
        # Fixed before the row's first send and kept for every re-send, so a consumer knows a
        # re-sent copy by its producer sequence (see crm_shared._sequences).
        Column("partition", Integer, nullable=True),
        Column("sequence", BigInteger, nullable=True),
    )
    # The relay and readiness only ever look for unsent rows and parked rows; partial indexes
    # keep both scans as small as the rows they look for.
    unsent = outbox.c.sent_at.is_(None) & outbox.c.parked_at.is_(None)
    Index("ix_outbox_unsent", outbox.c.id, postgresql_where=unsent, sqlite_where=unsent)
    parked = outbox.c.parked_at.is_not(None)
    Index("ix_outbox_parked", outbox.c.id, postgresql_where=parked, sqlite_where=parked)
    processed_events = Table(
        "processed_events",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(64), primary_key=True),
        Column("processed_at", UtcDateTime, nullable=False, index=unread_indexes),
    )
    idempotency_keys = Table(
        "idempotency_keys",
        metadata,
        Column("owner", String(100), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("fingerprint", String(64), nullable=False),
        Column("status_code", Integer, nullable=False),
        Column("response_body", Text, nullable=False),
        Column("created_at", UtcDateTime, nullable=False, index=True),
    )
    # Where each consumer stands in each partition, written in the transaction that stores
    # the batch's effects: the database, not the broker, says what was applied.
    consumer_offsets = Table(
        "consumer_offsets",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("topic", String(249), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("next_offset", BigInteger, nullable=False),
    )
    # Per producer (one per topic partition of another service's outbox): the next sequence
    # expected and the gaps below it not seen yet ("lo-hi,..." half-open ranges).
    consumed_sequences = Table(
        "consumed_sequences",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("producer", String(36), primary_key=True),
        Column("next_sequence", BigInteger, nullable=False),
        Column("gaps", Text, nullable=False),
    )
    # This service's outbox as a producer: one sequence per topic partition, named by a
    # producer id drawn when the row is made (a restored or new database starts a new one).
    outbox_sequences = Table(
        "outbox_sequences",
        metadata,
        Column("topic", String(249), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("producer", String(36), nullable=False, unique=True),
        Column("next_sequence", BigInteger, nullable=False),
    )
    return PlumbingTables(
        outbox,
        processed_events,
        idempotency_keys,
        consumer_offsets,
        consumed_sequences,
        outbox_sequences,
    )
