"""Recovering the sends a crash interrupted: ``sending`` rows whose sender is gone.

Every process sends under a name of its own (:func:`hold_sender`), and holds a PostgreSQL
session advisory lock named after it for as long as it lives: the server frees the lock when
the process's connection drops, a SIGKILL included. A sender whose lock can be taken is gone,
so its ``sending`` rows are recovered by :func:`recover` at the start of every delivery round
of any replica, the restarted process's first round included. SQLite serves one process, so
there every other sender is a former run of this one. Rows older than the lease are
recovered whoever sent them, as a backstop. What recovery does with each row is
:func:`notification_service.domain.crash_recovery.recover_interrupted_send`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, text

from crm_contracts import CloudEvent, NotificationChannel
from crm_shared import ServiceRuntime, add_many_to_outbox, job_lock, new_id
from notification_service.db.models import PLUMBING, Notification, NotificationStates
from notification_service.domain.crash_recovery import recover_interrupted_send
from notification_service.workflows.outcomes import SCHEDULED, fail

__all__ = ["hold_sender", "recover"]


def _lock_name(sender: str) -> str:
    return f"notification-sender:{sender}"


@contextlib.asynccontextmanager
async def hold_sender(runtime: ServiceRuntime) -> AsyncIterator[str]:
    """A new sender name for this process, marked alive for as long as the block runs."""
    sender = new_id()
    async with job_lock(runtime.engine, _lock_name(sender)):
        yield sender


async def recover(
    runtime: ServiceRuntime,
    *,
    sender: str,
    stale_before: datetime,
    now: datetime,
    max_attempts: int,
) -> int:
    """Recover the ``sending`` rows of gone senders and those older than ``stale_before``
    (``sender`` is this process); how many were recovered."""
    async with runtime.sessions() as session:
        senders = set(
            await session.scalars(
                select(Notification.sender).where(text(NotificationStates.SENDING)).distinct()
            )
        )
    if not senders:
        return 0  # nothing is being sent: the common case, one query
    recovered = 0
    for other in sorted(s for s in senders if s is not None and s != sender):
        # Holding the gone sender's lock while recovering: two replicas never both do it.
        async with job_lock(runtime.engine, _lock_name(other)) as gone:
            if gone:
                recovered += await _recover_rows(
                    runtime, Notification.sender == other, now, max_attempts
                )
    stale = or_(Notification.decided_at < stale_before, Notification.decided_at.is_(None))
    recovered += await _recover_rows(runtime, stale, now, max_attempts)
    return recovered


async def _recover_rows(
    runtime: ServiceRuntime, which: ColumnElement[bool], now: datetime, max_attempts: int
) -> int:
    async with runtime.sessions() as session, session.begin():
        query = select(Notification).where(text(NotificationStates.SENDING), which)
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        rows = list(await session.scalars(query))
        events = _recover_each(rows, now, max_attempts)
        await add_many_to_outbox(session, PLUMBING, events)
    if events:
        runtime.wake_relay()
    return len(rows)


def _recover_each(
    rows: Sequence[Notification], now: datetime, max_attempts: int
) -> list[CloudEvent]:
    events: list[CloudEvent] = []
    for row in rows:
        channel = NotificationChannel(row.channel) if row.channel else None
        recovery = recover_interrupted_send(
            channel, row.handed_at is not None, row.attempts, max_attempts
        )
        row.attempts = recovery.attempts
        if recovery.action == "fail":
            events.append(fail(row, now, recovery.detail))
            continue
        row.status = SCHEDULED
        row.due_at = now
        row.detail = recovery.detail
        row.sender = None
        row.handed_at = None
    return events
