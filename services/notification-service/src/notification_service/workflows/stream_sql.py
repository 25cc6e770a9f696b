"""The stream run's reads and writes on PostgreSQL: one set-based statement each, no ORM.

A consumed batch reads and writes a few hundred contacts, orders and queue rows. Through
SQLAlchemy's compiled path each row costs parameter processing (JSON serialised by a bind
processor, an expanding ``IN`` rendered per call) and, as an executemany, one executor run
per row in PostgreSQL. Here every statement is a fixed text with one array parameter per
column (``unnest``), run through ``exec_driver_sql`` in the session's transaction: one round
trip and one execution whatever the number of rows, JSON serialised once by ``json.dumps``.
Every key lookup goes through a primary key or unique index (``= ANY`` of an array).

SQLite has no arrays: :mod:`~notification_service.workflows.contacts` and
:mod:`~notification_service.workflows.scheduling` keep their SQLAlchemy statements there.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

# The columns a stream contact carries (contacts.STREAM_COLUMNS), with their array types.
_CONTACT_TYPES = (
    ("customer_id", "text"),
    ("scores", "jsonb"),
    ("stage", "text"),
    ("previous_stage", "text"),
    ("value_tier", "text"),
    ("grade", "text"),
    ("churn_risk", "float8"),
    ("rfm_segment", "text"),
    ("cluster", "text"),
    ("predicted_clv_12m", "text"),
    ("order_count", "int4"),
    ("last_order_at", "timestamptz"),
)
_JSON = "jsonb"

# The queue row's columns (scheduling.notification_rows' keys), with their array types.
NOTIFICATION_TYPES = (
    ("notification_id", "text"),
    ("dedup_key", "text"),
    ("customer_id", "text"),
    ("rule_id", "text"),
    ("template_id", "text"),
    ("channels", "jsonb"),
    ("category", "text"),
    ("priority", "int4"),
    ("trigger_event_id", "text"),
    ("trigger_type", "text"),
    ("trigger_at", "timestamptz"),
    ("trigger_facts", "jsonb"),
    ("status", "text"),
    ("intended_at", "timestamptz"),
    ("due_at", "timestamptz"),
    ("attempts", "int4"),
    ("created_at", "timestamptz"),
    # Set when the row is decided as it is queued (decided_at_once), else null.
    ("reason", "text"),
    ("detail", "text"),
    ("finished_at", "timestamptz"),
    ("assignment", "text"),
)


def is_postgres(session: AsyncSession) -> bool:
    """Whether the session's database takes this module's statements."""
    return session.get_bind().dialect.name == "postgresql"


def _unnest(types: Sequence[tuple[str, str]], first: int = 1) -> str:
    """``unnest($1::text[], ...) AS v(a, ...)`` with JSON columns read from text arrays."""
    arrays = ", ".join(
        f"${n}::{'text' if kind == _JSON else kind}[]" for n, (_, kind) in enumerate(types, first)
    )
    return f"unnest({arrays}) AS v({', '.join(name for name, _ in types)})"


def _value(name: str, kind: str) -> str:
    return f"v.{name}::jsonb" if kind == _JSON else f"v.{name}"


def _columns(rows: Sequence[dict[str, Any]], types: Sequence[tuple[str, str]]) -> tuple[Any, ...]:
    """One list per column, JSON columns serialised once."""
    return tuple(
        _json_column([row[name] for row in rows]) if kind == _JSON else [row[name] for row in rows]
        for name, kind in types
    )


def _json_column(values: list[Any]) -> list[str | None]:
    """Each document as JSON text, serialised once per object: the queue rows of one trigger
    (four for a first order) share its facts document."""
    texts: dict[int, str | None] = {}
    column = []
    for value in values:
        key = id(value)  # the rows hold every value alive while this runs
        if key not in texts:
            texts[key] = _json(value)
        column.append(texts[key])
    return column


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


async def _run(session: AsyncSession, sql: str, parameters: tuple[Any, ...]) -> Any:
    connection = await session.connection()
    return await connection.exec_driver_sql(sql, parameters)


_CONTACT_NAMES = ", ".join(name for name, _ in _CONTACT_TYPES)
_LOAD_CONTACTS = f"SELECT {_CONTACT_NAMES} FROM contacts WHERE customer_id = ANY($1::text[])"


async def load_contacts(session: AsyncSession, customer_ids: Collection[str]) -> list[Any]:
    """The stream columns of the stored contacts among ``customer_ids`` (rows in column order)."""
    result = await _run(session, _LOAD_CONTACTS, (list(customer_ids),))
    return list(result.all())


_KNOWN_ORDERS = (
    "SELECT true, order_id FROM contact_orders WHERE order_id = ANY($1::text[]) "
    "UNION ALL "
    "SELECT DISTINCT false, customer_id FROM contact_orders "
    "WHERE customer_id = ANY($2::text[]) AND NOT cancelled"
)


async def known_orders_and_buyers(
    session: AsyncSession, order_ids: Collection[str], customer_ids: Collection[str]
) -> tuple[set[str], set[str]]:
    """Which of ``order_ids`` are stored, and which of ``customer_ids`` have a live order."""
    result = await _run(session, _KNOWN_ORDERS, (sorted(order_ids), sorted(customer_ids)))
    known: set[str] = set()
    buyers: set[str] = set()
    for is_order, key in result:
        (known if is_order else buyers).add(key)
    return known, buyers


_INSERT_ORDERS = (
    "INSERT INTO contact_orders (order_id, customer_id, placed_at, cancelled, total) "
    "SELECT v.order_id, v.customer_id, v.placed_at, false, v.total FROM "
    + _unnest(
        (
            ("order_id", "text"),
            ("customer_id", "text"),
            ("placed_at", "timestamptz"),
            ("total", "numeric"),
        )
    )
)


async def insert_orders(session: AsyncSession, orders: Sequence[dict[str, Any]]) -> None:
    """Store new orders (keys: order_id, customer_id, placed_at, total), none cancelled."""
    if not orders:
        return
    totals: list[Decimal | None] = [order["total"] for order in orders]
    await _run(
        session,
        _INSERT_ORDERS,
        (
            [order["order_id"] for order in orders],
            [order["customer_id"] for order in orders],
            [order["placed_at"] for order in orders],
            totals,
        ),
    )


_INSERT_CONTACTS = (
    f"INSERT INTO contacts ({_CONTACT_NAMES}, attributes, tags, known_from_profile, updated_at) "
    f"SELECT {', '.join(_value(name, kind) for name, kind in _CONTACT_TYPES)}, "
    "'{}'::jsonb, '[]'::jsonb, false, v.updated_at FROM "
    + _unnest((*_CONTACT_TYPES, ("updated_at", "timestamptz")))
)


async def insert_contacts(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert contacts first seen in the stream (stream columns and ``updated_at``)."""
    if rows:
        types = (*_CONTACT_TYPES, ("updated_at", "timestamptz"))
        await _run(session, _INSERT_CONTACTS, _columns(rows, types))


_UPDATE_CONTACTS = (
    "UPDATE contacts SET "
    + ", ".join(f"{name} = {_value(name, kind)}" for name, kind in _CONTACT_TYPES[1:])
    + " FROM "
    + _unnest(_CONTACT_TYPES)
    + " WHERE contacts.customer_id = v.customer_id"
)


async def update_contacts(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Write the stream columns of stored contacts back (one row per contact)."""
    if rows:
        await _run(session, _UPDATE_CONTACTS, _columns(rows, _CONTACT_TYPES))


_QUEUE = (
    f"INSERT INTO notifications ({', '.join(name for name, _ in NOTIFICATION_TYPES)}) "
    f"SELECT {', '.join(_value(name, kind) for name, kind in NOTIFICATION_TYPES)} FROM "
    + _unnest(NOTIFICATION_TYPES)
    + " ON CONFLICT (dedup_key) DO NOTHING RETURNING notification_id"
)


async def queue(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert queue rows in order; a row whose dedup key is stored (or earlier in ``rows``)
    is skipped. The ids of the rows inserted."""
    if not rows:
        return set()
    result = await _run(session, _QUEUE, _columns(rows, NOTIFICATION_TYPES))
    return {notification_id for (notification_id,) in result}
