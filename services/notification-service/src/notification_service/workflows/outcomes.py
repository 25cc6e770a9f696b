"""A message's final states: sent, failed or suppressed, each with the event it publishes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    Category,
    CloudEvent,
    NotificationChannel,
    NotificationFailed,
    NotificationSent,
    NotificationSuppressed,
    build_event,
    encode_event,
)
from crm_shared import add_encoded_to_outbox
from notification_service.db.models import PLUMBING
from notification_service.domain.delivery_policy import Suppression, SuppressionReason
from notification_service.domain.notification_status import NotificationStatus

SOURCE: Final = "/notification-service"
# The states by their short names, as the workflows use them.
SCHEDULED, SENDING, SENT = (
    NotificationStatus.SCHEDULED,
    NotificationStatus.SENDING,
    NotificationStatus.SENT,
)
FAILED, SUPPRESSED = NotificationStatus.FAILED, NotificationStatus.SUPPRESSED


class Decided(Protocol):
    """A notification row being decided: a mapped ``Notification`` or a claimed record
    (``due_rows.DueRow``); the functions below set its final state on it."""

    notification_id: str
    customer_id: str
    rule_id: str | None
    template_id: str
    channels: list[str]
    channel: str | None
    category: str
    trigger_event_id: str | None
    attempts: int
    status: str
    reason: str | None
    detail: str | None
    finished_at: datetime | None
    provider_id: str | None


def suppress(notification: Decided, why: Suppression, now: datetime) -> CloudEvent:
    """Close ``notification`` as suppressed; the ``notification.suppressed`` to publish."""
    notification.status = SUPPRESSED
    notification.reason = why.reason
    notification.detail = why.detail
    notification.finished_at = now
    reason: SuppressionReason = why.reason
    payload = NotificationSuppressed(
        notification_id=notification.notification_id,
        customer_id=notification.customer_id,
        rule_id=notification.rule_id,
        channel=why.channel,
        category=Category(notification.category),
        trigger_event_id=notification.trigger_event_id,
        suppressed_at=now,
        reason=reason,
        detail=why.detail,
    )
    return build_event(payload, source=SOURCE, time=now)


def mark_sent(notification: Decided, now: datetime, provider_id: str | None) -> CloudEvent:
    """Close ``notification`` as sent; the ``notification.sent`` to publish."""
    notification.status = SENT
    notification.finished_at = now
    notification.provider_id = provider_id
    notification.detail = None
    payload = NotificationSent(
        notification_id=notification.notification_id,
        customer_id=notification.customer_id,
        rule_id=notification.rule_id,
        template_id=notification.template_id,
        channel=NotificationChannel(notification.channel or NotificationChannel.IN_APP),
        category=Category(notification.category),
        trigger_event_id=notification.trigger_event_id,
        sent_at=now,
    )
    return build_event(payload, source=SOURCE, time=now)


def fail(notification: Decided, now: datetime, error: str) -> CloudEvent:
    """Close ``notification`` as failed for good; the ``notification.failed`` to publish."""
    notification.status = FAILED
    notification.finished_at = now
    notification.detail = error
    channel = notification.channel or next(iter(notification.channels or []), None)
    payload = NotificationFailed(
        notification_id=notification.notification_id,
        customer_id=notification.customer_id,
        rule_id=notification.rule_id,
        template_id=notification.template_id,
        channel=NotificationChannel(channel) if channel else NotificationChannel.EMAIL,
        category=Category(notification.category),
        trigger_event_id=notification.trigger_event_id,
        failed_at=now,
        attempts=max(notification.attempts, 1),
        permanent=True,
        error=error[:500],
    )
    return build_event(payload, source=SOURCE, time=now)


async def stage_outcomes(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """Stage outcome events in the outbox, serialised once and written in one statement (COPY
    on PostgreSQL): a delivery round or a consumed batch can decide hundreds of messages."""
    await add_encoded_to_outbox(
        session,
        PLUMBING,
        [(e.id, str(e.data.topic), e.subject, encode_event(e).decode()) for e in events],
    )
