"""Consumed events: scores, stages, warnings and message outcomes feed the 360 read model."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.contracts import (
    ChurnWarning,
    CloudEvent,
    NotificationFailed,
    NotificationSent,
    NotificationSuppressed,
    ScoreUpdated,
    StageChanged,
    Topic,
)
from profile_service.workflows import customer_view

CUSTOMER_VIEW_TOPICS = (Topic.SCORES, Topic.LIFECYCLE, Topic.NOTIFICATIONS)


async def apply_to_customer_view(session: AsyncSession, event: CloudEvent) -> None:
    """Route one event to the read-model update it implies; other types are ignored."""
    data = event.data
    if isinstance(data, ScoreUpdated):
        await customer_view.record_scores(session, event.id, data)
    elif isinstance(data, StageChanged):
        await customer_view.record_stage(session, data)
    elif isinstance(data, ChurnWarning):
        await customer_view.record_warning(session, data)
    elif isinstance(data, NotificationSent | NotificationFailed | NotificationSuppressed):
        await customer_view.record_notification(session, data)
