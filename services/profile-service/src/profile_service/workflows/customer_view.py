"""The customer 360 read model: the latest scores, stage, warning and messages of each customer."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.contracts import (
    ChurnWarning,
    NotificationFailed,
    NotificationSent,
    NotificationSuppressed,
    ScoreUpdated,
    StageChanged,
)
from profile_service.db.models import NotificationView, ScoreView, StageView

NotificationEvent = NotificationSent | NotificationFailed | NotificationSuppressed


async def record_scores(session: AsyncSession, event_id: str, scores: ScoreUpdated) -> None:
    """Keep the newest scores; an older re-score arriving late is ignored."""
    row = await session.get(ScoreView, scores.customer_id, with_for_update=True)
    if row is not None and row.as_of > scores.as_of:
        return
    document = scores.model_dump(mode="json")
    if row is None:
        session.add(
            ScoreView(
                customer_id=scores.customer_id,
                as_of=scores.as_of,
                event_id=event_id,
                scores=document,
            )
        )
        await session.flush()  # a later event of the same batch must find this row
    else:
        row.as_of, row.event_id, row.scores = scores.as_of, event_id, document


async def _stage_row(session: AsyncSession, customer_id: str) -> StageView:
    row = await session.get(StageView, customer_id, with_for_update=True)
    if row is None:
        row = StageView(customer_id=customer_id)
        session.add(row)
        await session.flush()
    return row


async def record_stage(session: AsyncSession, change: StageChanged) -> None:
    """Keep the newest stage."""
    row = await _stage_row(session, change.customer_id)
    if row.stage_changed_at is not None and row.stage_changed_at > change.changed_at:
        return
    row.stage = change.stage.value
    row.stage_changed_at = change.changed_at
    row.stage_detail = change.model_dump(mode="json")


async def record_warning(session: AsyncSession, warning: ChurnWarning) -> None:
    """Keep the newest state of the customer's churn warning."""
    row = await _stage_row(session, warning.customer_id)
    if row.warning_at is not None and row.warning_at > warning.raised_at:
        return
    row.warning = warning.model_dump(mode="json")
    row.warning_at = warning.raised_at


async def record_notification(session: AsyncSession, notification: NotificationEvent) -> None:
    """Add a message outcome to the customer's history (once per notification and outcome)."""
    if isinstance(notification, NotificationSent):
        outcome, occurred_at = "sent", notification.sent_at
    elif isinstance(notification, NotificationFailed):
        outcome, occurred_at = "failed", notification.failed_at
    else:
        outcome, occurred_at = "suppressed", notification.suppressed_at
    exists = await session.scalar(
        select(NotificationView.id).where(
            NotificationView.notification_id == notification.notification_id,
            NotificationView.outcome == outcome,
        )
    )
    if exists is None:
        session.add(
            NotificationView(
                notification_id=notification.notification_id,
                customer_id=notification.customer_id,
                outcome=outcome,
                occurred_at=occurred_at,
                detail={"outcome": outcome, **notification.model_dump(mode="json")},
            )
        )
        await session.flush()


async def view_of(session: AsyncSession, customer_id: str, *, recent: int) -> dict[str, Any]:
    """Scores, stage, warning and the most recent message outcomes of one customer."""
    scores = await session.get(ScoreView, customer_id)
    stage = await session.get(StageView, customer_id)
    notifications = await session.scalars(
        select(NotificationView)
        .where(NotificationView.customer_id == customer_id)
        .order_by(NotificationView.occurred_at.desc(), NotificationView.id.desc())
        .limit(recent)
    )
    return {
        "scores": scores.scores if scores else None,
        "lifecycle": stage.stage_detail if stage and stage.stage else None,
        "churn_warning": stage.warning if stage else None,
        "recent_notifications": [n.detail for n in notifications],
    }
