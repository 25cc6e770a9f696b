"""The stream run's reads and writes on PostgreSQL: one set-based statement each, no ORM.

A consumed batch reads and writes a few hundred contacts, orders and queue rows. Through
SQLAlchemy's compiled path each row costs parameter processing (JSON serialised by a bind
processor, an expanding ``IN`` rendered per call) and, as an executemany, one executor run
per row in PostgreSQL. Here every statement is a fixed text run through ``exec_driver_sql`` in
the session's transaction: one round trip and one execution whatever the number of rows.

The rows written go as one JSON document (an array of arrays, read with
``jsonb_array_elements``), encoded by msgspec. With one array parameter per column, asyncpg
inspected every element of every array (two ABC ``isinstance`` checks per text, to tell a
sub-array from a value) before encoding it: the largest cost of the queue insert in the
service's process (issue 12). PostgreSQL reads the document in about the time it took to
read the arrays. The contacts update is the exception (see ``_UPDATE_CONTACTS``). Keys are
read through a primary key or unique index (``= ANY`` of an array: ids only, few elements),
except the contacts (see ``_AMONG_CONTACTS``).

SQLite has no arrays: :mod:`~notification_service.workflows.contacts` and
:mod:`~notification_service.workflows.scheduling` keep their SQLAlchemy statements there.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import msgspec
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


def _recordset(types: Sequence[tuple[str, str]], parameter: int = 1) -> str:
    """``(SELECT (r->>0)::text AS a, ... FROM jsonb_array_elements($1::jsonb) r) AS v``: the
    rows of one JSON document, each an array of its columns' values in ``types`` order.

    Parsed once to jsonb: a JSON column's value is taken as it is (no second parse), and
    positions cost neither key names in the document nor a lookup table per row (as
    ``json_to_recordset``'s objects do, which cost PostgreSQL three times as much)."""
    columns = ", ".join(_element(index, name, kind) for index, (name, kind) in enumerate(types))
    return f"(SELECT {columns} FROM jsonb_array_elements(${parameter}::jsonb) AS r) AS v"


def _element(index: int, name: str, kind: str) -> str:
    if kind == "jsonb":
        # A JSON null in the document is SQL NULL in the row, as with the other types.
        return f"nullif(r->{index}, 'null'::jsonb) AS {name}"
    return f"(r->>{index})::{kind} AS {name}"


def _document(rows: Sequence[dict[str, Any]], types: Sequence[tuple[str, str]]) -> str:
    """The rows as one JSON array of arrays, ``types``' columns in order (times as RFC 3339
    with their offset, decimals as strings: what the columns' input functions read back
    exactly, floats as their shortest round-trip repr)."""
    names = [name for name, _ in types]
    return _ENCODER.encode([[row[name] for name in names] for row in rows]).decode()


_ENCODER = msgspec.json.Encoder(decimal_format="string")


async def _run(session: AsyncSession, sql: str, parameters: tuple[Any, ...]) -> Any:
    connection = await session.connection()
    return await connection.exec_driver_sql(sql, parameters)


_CONTACT_NAMES = ", ".join(name for name, _ in _CONTACT_TYPES)
# A semi-join on the batch's ids (crm_shared.among_hashed's form), not ``= ANY($1)``: a
# prepared statement keeps the generic plan it made while ``contacts`` was a few pages of new
# contacts without scores (a service's first minute), until the table's statistics change. For
# ``= ANY`` that plan is a sequential scan comparing every contact with every id of the batch
# (issue 12: 4.4 ms a call in the chain); the semi-join's is a hash of the ids probed once per
# contact, and on a table analysed at size both probe the primary key (bench/RESULTS.md,
# notifycontacts).
_AMONG_CONTACTS = "customer_id IN (SELECT unnest($1::text[]))"
_LOAD_CONTACTS = f"SELECT {_CONTACT_NAMES} FROM contacts WHERE {_AMONG_CONTACTS}"


async def load_contacts(session: AsyncSession, customer_ids: Collection[str]) -> list[Any]:
    """The stream columns of the stored contacts among ``customer_ids`` (rows in column order)."""
    result = await _run(session, _LOAD_CONTACTS, (list(customer_ids),))
    return list(result.all())


# What a delivery decision reads of a contact (delivery_inputs.customers), and of its consents.
STATE_COLUMNS = (
    "customer_id",
    "time_zone",
    "email",
    "phone",
    "known_from_profile",
    "stage",
    "last_order_at",
)
CONSENT_COLUMNS = ("customer_id", "channel", "purpose", "granted", "changed_at")
_STATES = f"SELECT {', '.join(STATE_COLUMNS)} FROM contacts WHERE {_AMONG_CONTACTS}"
_CONSENTS = (
    f"SELECT {', '.join(CONSENT_COLUMNS)} FROM contact_consents WHERE customer_id = ANY($1::text[])"
)


async def delivery_states(
    session: AsyncSession, customer_ids: Collection[str]
) -> tuple[list[Any], list[Any]]:
    """The contact rows (``STATE_COLUMNS``) and consent rows (``CONSENT_COLUMNS``) of the
    customers, for the delivery decision."""
    ids = list(customer_ids)
    contacts = await _run(session, _STATES, (ids,))
    consents = await _run(session, _CONSENTS, (ids,))
    return list(contacts.all()), list(consents.all())


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


_ORDER_TYPES = (
    ("order_id", "text"),
    ("customer_id", "text"),
    ("placed_at", "timestamptz"),
    ("total", "numeric"),
)
_INSERT_ORDERS = (
    "INSERT INTO contact_orders (order_id, customer_id, placed_at, cancelled, total) "
    "SELECT v.order_id, v.customer_id, v.placed_at, false, v.total FROM " + _recordset(_ORDER_TYPES)
)


async def insert_orders(session: AsyncSession, orders: Sequence[dict[str, Any]]) -> None:
    """Store new orders (keys: order_id, customer_id, placed_at, total), none cancelled."""
    if orders:
        await _run(session, _INSERT_ORDERS, (_document(orders, _ORDER_TYPES),))


_NEW_CONTACT_TYPES = (*_CONTACT_TYPES, ("updated_at", "timestamptz"))
_INSERT_CONTACTS = (
    f"INSERT INTO contacts ({_CONTACT_NAMES}, attributes, tags, known_from_profile, updated_at) "
    f"SELECT {', '.join(f'v.{name}' for name, _ in _CONTACT_TYPES)}, "
    "'{}'::jsonb, '[]'::jsonb, false, v.updated_at FROM " + _recordset(_NEW_CONTACT_TYPES)
)


async def insert_contacts(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert contacts first seen in the stream (stream columns and ``updated_at``)."""
    if rows:
        await _run(session, _INSERT_CONTACTS, (_document(rows, _NEW_CONTACT_TYPES),))


# The update keeps one array parameter per column: read from the JSON document, the same
# update cost PostgreSQL eight times as much in the chain's benchmark (1 -> 8 ms per call of
# ~24 contacts, pg_stat_statements), though not alone; see bench/RESULTS.md (notifycpu).
_UPDATE_CONTACTS = (
    "UPDATE contacts SET "
    + ", ".join(
        f"{name} = v.{name}::jsonb" if kind == "jsonb" else f"{name} = v.{name}"
        for name, kind in _CONTACT_TYPES[1:]
    )
    + " FROM unnest("
    + ", ".join(
        f"${n}::{'text' if kind == 'jsonb' else kind}[]"
        for n, (_, kind) in enumerate(_CONTACT_TYPES, 1)
    )
    + f") AS v({', '.join(name for name, _ in _CONTACT_TYPES)})"
    + " WHERE contacts.customer_id = v.customer_id"
)


async def update_contacts(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Write the stream columns of stored contacts back (one row per contact)."""
    if rows:
        columns = tuple(
            [_json_text(row[name]) for row in rows]
            if kind == "jsonb"
            else [row[name] for row in rows]
            for name, kind in _CONTACT_TYPES
        )
        await _run(session, _UPDATE_CONTACTS, columns)


def _json_text(value: Any) -> str | None:
    return None if value is None else _ENCODER.encode(value).decode()


_QUEUE = (
    f"INSERT INTO notifications ({', '.join(name for name, _ in NOTIFICATION_TYPES)}) "
    f"SELECT {', '.join(f'v.{name}' for name, _ in NOTIFICATION_TYPES)} FROM "
    + _recordset(NOTIFICATION_TYPES)
    + " ON CONFLICT (dedup_key) DO NOTHING RETURNING notification_id"
)


async def queue(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert queue rows in order; a row whose dedup key is stored (or earlier in ``rows``)
    is skipped. The ids of the rows inserted."""
    if not rows:
        return set()
    result = await _run(session, _QUEUE, (_document(rows, NOTIFICATION_TYPES),))
    return {notification_id for (notification_id,) in result}
