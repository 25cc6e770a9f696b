"""The delivery log: every notification decided, newest first, filtered and paged by keyset."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import TimeWindow, newest_first, where_given, within
from notification_service.db.models import Notification


@dataclass(frozen=True)
class NotificationFilter:
    """Criteria of the delivery log; None (or an open side of ``created``) means any."""

    customer_id: str | None = None
    rule_id: str | None = None
    channel: str | None = None
    status: str | None = None
    created: TimeWindow = field(default_factory=TimeWindow)


async def list_notifications(
    session: AsyncSession,
    criteria: NotificationFilter,
    *,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[Notification]:
    """Notifications newest first (by creation time, then id), after the ``after`` position."""
    query = where_given(
        select(Notification),
        (Notification.customer_id, criteria.customer_id),
        (Notification.rule_id, criteria.rule_id),
        (Notification.channel, criteria.channel),
        (Notification.status, criteria.status),
    )
    query = within(query, Notification.created_at, criteria.created)
    query = newest_first(query, Notification.created_at, Notification.notification_id, after)
    return list(await session.scalars(query.limit(limit)))


async def notification_by_id(session: AsyncSession, notification_id: str) -> Notification | None:
    """One notification, or None."""
    return await session.get(Notification, notification_id)


@dataclass(frozen=True)
class OutcomeCount:
    """How many messages of one rule ended in one status (and suppression reason)."""

    rule_id: str | None
    status: str
    reason: str | None
    messages: int


async def outcome_counts(session: AsyncSession, created: TimeWindow) -> list[OutcomeCount]:
    """Messages per rule, status and suppression reason, created in the window."""
    query = select(
        Notification.rule_id, Notification.status, Notification.reason, func.count()
    ).group_by(Notification.rule_id, Notification.status, Notification.reason)
    rows = (await session.execute(within(query, Notification.created_at, created))).all()
    counts = [OutcomeCount(rule, status, reason, count) for rule, status, reason, count in rows]
    return sorted(counts, key=lambda c: (c.rule_id or "", c.status, c.reason or ""))
