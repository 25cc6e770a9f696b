"""The delivery round's claimed rows as plain records, written back in one statement.

A round claims up to ``delivery_batch_size`` due rows and decides them all. As mapped objects
each row cost its identity-map entry, attribute instrumentation and, at commit, one UPDATE
execution per row from the unit of work. Here a claimed row is a slotted record read from
the table, the decision changes its fields in memory (the outcome functions set the same
attribute names on a record or a mapped object), and :func:`write_back` stores every claimed
row's decided columns with one ``UPDATE ... FROM unnest(...)`` on PostgreSQL (the rows are
locked by the claim, so writing back a column that did not change is harmless), and the
round's in-app messages go into the inbox with one INSERT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from notification_service.db.models import INBOX_MESSAGES, NOTIFICATIONS, NotificationStates
from notification_service.workflows import stream_sql


@dataclass(slots=True)
class DueRow:
    """A claimed notification row: every column of ``notifications``, by name."""

    notification_id: str
    dedup_key: str
    customer_id: str
    rule_id: str | None
    template_id: str
    channels: list[str]
    channel: str | None
    category: str
    priority: int
    trigger_event_id: str | None
    trigger_type: str | None
    trigger_at: datetime | None
    trigger_facts: dict[str, Any]
    status: str
    intended_at: datetime
    due_at: datetime
    decided_at: datetime | None
    sender: str | None
    handed_at: datetime | None
    attempts: int
    created_at: datetime
    finished_at: datetime | None
    recipient: str | None
    subject: str | None
    provider_id: str | None
    reason: str | None
    detail: str | None
    assignment: str | None


_FIELDS = tuple(field.name for field in fields(DueRow))

# What a decision may change, with the array type of each on PostgreSQL.
_DECIDED = (
    ("status", "text"),
    ("reason", "text"),
    ("detail", "text"),
    ("finished_at", "timestamptz"),
    ("assignment", "text"),
    ("due_at", "timestamptz"),
    ("channel", "text"),
    ("recipient", "text"),
    ("subject", "text"),
    ("attempts", "int4"),
    ("decided_at", "timestamptz"),
    ("sender", "text"),
    ("handed_at", "timestamptz"),
    ("provider_id", "text"),
)
_TEXT = frozenset(name for name, kind in _DECIDED if kind == "text")

_WRITE_BACK = (
    "UPDATE notifications SET "
    + ", ".join(f"{name} = v.{name}" for name, _ in _DECIDED)
    + " FROM unnest($1::text[], "
    + ", ".join(f"${n}::{kind}[]" for n, (_, kind) in enumerate(_DECIDED, 2))
    + ") AS v(notification_id, "
    + ", ".join(name for name, _ in _DECIDED)
    + ") WHERE notifications.notification_id = v.notification_id"
)


async def claim_due(session: AsyncSession, now: datetime, limit: int) -> list[DueRow]:
    """Up to ``limit`` scheduled rows due at ``now``, oldest first, locked for this
    transaction (rows another replica holds are skipped)."""
    query = (
        select(*[NOTIFICATIONS.c[name] for name in _FIELDS])
        .where(text(NotificationStates.SCHEDULED), NOTIFICATIONS.c.due_at <= now)
        .order_by(NOTIFICATIONS.c.due_at)
        .limit(limit)
    )
    if stream_sql.is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    return [DueRow(*row) for row in await session.execute(query)]


async def write_back(session: AsyncSession, rows: Sequence[DueRow]) -> None:
    """Store the decided columns of ``rows`` (claimed by this transaction)."""
    if not rows:
        return
    if stream_sql.is_postgres(session):
        parameters = [[row.notification_id for row in rows]]
        parameters += [[_plain(name, getattr(row, name)) for row in rows] for name, _ in _DECIDED]
        connection = await session.connection()
        await connection.exec_driver_sql(_WRITE_BACK, tuple(parameters))
        return
    await session.execute(
        update(NOTIFICATIONS).where(NOTIFICATIONS.c.notification_id == bindparam("key")),
        [
            {"key": row.notification_id, **{name: getattr(row, name) for name, _ in _DECIDED}}
            for row in rows
        ],
    )


_INBOX = (
    "INSERT INTO inbox_messages (notification_id, customer_id, title, body, category, "
    "created_at) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::timestamptz[])"
)
_INBOX_COLUMNS = ("notification_id", "customer_id", "title", "body", "category", "created_at")


async def insert_inbox_messages(session: AsyncSession, messages: Sequence[dict[str, Any]]) -> None:
    """Put the round's in-app messages into their customers' inboxes, in order."""
    if not messages:
        return
    if stream_sql.is_postgres(session):
        parameters = tuple([message[name] for message in messages] for name in _INBOX_COLUMNS)
        connection = await session.connection()
        await connection.exec_driver_sql(_INBOX, parameters)
        return
    await session.execute(insert(INBOX_MESSAGES), list(messages))


def _plain(name: str, value: Any) -> Any:
    # Statuses, reasons and groups are str enums: the driver takes their text.
    return str(value) if name in _TEXT and value is not None else value
