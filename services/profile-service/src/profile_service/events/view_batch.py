"""The 360 read model kept from a consumed batch: a few statements per batch, not per event.

Three or four view events arrive per order (scores, stage, warning, message outcomes). Each
customer's newest scores, stage and warning of the batch are upserted in one statement per
kind, guarded so an older document arriving late never replaces a newer one; message outcomes
are inserted once per notification and outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import or_
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    ChurnWarning,
    CloudEvent,
    NotificationFailed,
    NotificationSent,
    NotificationSuppressed,
    ScoreUpdated,
    StageChanged,
    Topic,
)
from crm_shared import as_utc, upsert_into
from profile_service.db.models import NotificationView, ScoreView, StageView

CUSTOMER_VIEW_TOPICS = (Topic.SCORES, Topic.LIFECYCLE, Topic.NOTIFICATIONS)

Payload = TypeVar("Payload")


async def apply_view_batch(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """Update the 360 read model from a batch (in stream order); other event types are ignored."""
    scores = _newest(events, ScoreUpdated, lambda scores: scores.as_of)
    stages = _newest(events, StageChanged, lambda change: change.changed_at)
    warnings = _newest(events, ChurnWarning, lambda warning: warning.raised_at)
    await _keep_scores(session, scores)
    await _keep_stages(session, stages)
    await _keep_warnings(session, warnings)
    await _add_outcomes(session, events)


def _newest(
    events: Sequence[CloudEvent],
    kind: type[Payload],
    moment: Callable[[Payload], datetime],
) -> dict[str, tuple[str, Payload]]:
    """Per customer, the event id and payload of the newest ``kind`` (later in stream on a tie)."""
    newest: dict[str, tuple[str, Payload]] = {}
    for event in events:
        data = event.data
        if not isinstance(data, kind):
            continue
        kept = newest.get(event.subject)
        if kept is None or as_utc(moment(data)) >= as_utc(moment(kept[1])):
            newest[event.subject] = (event.id, data)
    return newest


async def _keep_scores(session: AsyncSession, newest: dict[str, tuple[str, ScoreUpdated]]) -> None:
    if not newest:
        return
    rows = [
        {
            "customer_id": customer_id,
            "as_of": as_utc(scores.as_of),
            "event_id": event_id,
            "scores": scores.model_dump(mode="json"),
        }
        for customer_id, (event_id, scores) in newest.items()
    ]
    statement = upsert_into(session, ScoreView)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[ScoreView.customer_id],
            set_={name: statement.excluded[name] for name in ("as_of", "event_id", "scores")},
            where=ScoreView.as_of <= statement.excluded.as_of,
        ),
        rows,
    )


async def _keep_stages(session: AsyncSession, newest: dict[str, tuple[str, StageChanged]]) -> None:
    rows = [
        {
            "customer_id": customer_id,
            "stage": change.stage.value,
            "stage_changed_at": as_utc(change.changed_at),
            "stage_detail": change.model_dump(mode="json"),
        }
        for customer_id, (_, change) in newest.items()
    ]
    await _upsert_stage_columns(session, rows, StageView.stage_changed_at, "stage_changed_at")


async def _keep_warnings(
    session: AsyncSession, newest: dict[str, tuple[str, ChurnWarning]]
) -> None:
    rows = [
        {
            "customer_id": customer_id,
            "warning": warning.model_dump(mode="json"),
            "warning_at": as_utc(warning.raised_at),
        }
        for customer_id, (_, warning) in newest.items()
    ]
    await _upsert_stage_columns(session, rows, StageView.warning_at, "warning_at")


async def _upsert_stage_columns(
    session: AsyncSession, rows: list[dict[str, Any]], guard: Any, guard_name: str
) -> None:
    """Upsert some columns of ``view_stages``; the row keeps them if ``guard`` is newer."""
    if not rows:
        return
    statement = upsert_into(session, StageView)
    columns = [name for name in rows[0] if name != "customer_id"]
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[StageView.customer_id],
            set_={name: statement.excluded[name] for name in columns},
            where=or_(guard.is_(None), guard <= statement.excluded[guard_name]),
        ),
        rows,
    )


async def _add_outcomes(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    rows = []
    for event in events:
        data = event.data
        if isinstance(data, NotificationSent):
            outcome, occurred_at = "sent", data.sent_at
        elif isinstance(data, NotificationFailed):
            outcome, occurred_at = "failed", data.failed_at
        elif isinstance(data, NotificationSuppressed):
            outcome, occurred_at = "suppressed", data.suppressed_at
        else:
            continue
        rows.append(
            {
                "notification_id": data.notification_id,
                "customer_id": data.customer_id,
                "outcome": outcome,
                "occurred_at": as_utc(occurred_at),
                "detail": {"outcome": outcome, **data.model_dump(mode="json")},
            }
        )
    if not rows:
        return
    statement = upsert_into(session, NotificationView).on_conflict_do_nothing(
        index_elements=[NotificationView.notification_id, NotificationView.outcome]
    )
    await session.execute(statement, rows)
