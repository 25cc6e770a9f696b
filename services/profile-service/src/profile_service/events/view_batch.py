"""The 360 read model kept from a consumed batch: a few statements per batch, not per event.

Three or four view events arrive per order (scores, stage, warning, message outcomes). Each
customer's newest scores, stage and warning of the batch are upserted in one statement per
kind, guarded so an older document arriving late never replaces a newer one; message outcomes
are inserted once per notification and outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Table
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
from crm_shared import BulkWrite, as_utc
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
    rows = [
        (customer_id, as_utc(scores.as_of), event_id, scores.model_dump_json())
        for customer_id, (event_id, scores) in newest.items()
    ]
    await _SCORES.run(session, rows)


async def _keep_stages(session: AsyncSession, newest: dict[str, tuple[str, StageChanged]]) -> None:
    rows = [
        (customer_id, change.stage.value, as_utc(change.changed_at), change.model_dump_json())
        for customer_id, (_, change) in newest.items()
    ]
    await _STAGES.run(session, rows)


async def _keep_warnings(
    session: AsyncSession, newest: dict[str, tuple[str, ChurnWarning]]
) -> None:
    rows = [
        (customer_id, warning.model_dump_json(), as_utc(warning.raised_at))
        for customer_id, (_, warning) in newest.items()
    ]
    await _WARNINGS.run(session, rows)


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
        # The outcome, then the payload's own fields (which win on a clash, as a dict merge).
        dumped = data.model_dump_json()
        detail = f'{{"outcome":"{outcome}"{"," if dumped != "{}" else ""}{dumped[1:]}'
        rows.append((data.notification_id, data.customer_id, outcome, as_utc(occurred_at), detail))
    await _OUTCOMES.run(session, rows)


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def _newer(table: str, guard: str) -> str:
    """SQL: the stored row has no ``guard`` time yet, or an older (or equal) one."""
    return f"{table}.{guard} IS NULL OR {table}.{guard} <= excluded.{guard}"


# Each view statement is one execution per batch, its JSON serialised once by pydantic.
_SCORES = BulkWrite(
    _table(ScoreView),
    ("customer_id", "as_of", "event_id", "scores"),
    conflict=("customer_id",),
    update=("as_of", "event_id", "scores"),
    where="view_scores.as_of <= excluded.as_of",
    encoded=frozenset({"scores"}),
)
_STAGES = BulkWrite(
    _table(StageView),
    ("customer_id", "stage", "stage_changed_at", "stage_detail"),
    conflict=("customer_id",),
    update=("stage", "stage_changed_at", "stage_detail"),
    where=_newer("view_stages", "stage_changed_at"),
    encoded=frozenset({"stage_detail"}),
)
_WARNINGS = BulkWrite(
    _table(StageView),
    ("customer_id", "warning", "warning_at"),
    conflict=("customer_id",),
    update=("warning", "warning_at"),
    where=_newer("view_stages", "warning_at"),
    encoded=frozenset({"warning"}),
)
_OUTCOMES = BulkWrite(
    _table(NotificationView),
    ("notification_id", "customer_id", "outcome", "occurred_at", "detail"),
    conflict=("notification_id", "outcome"),
    encoded=frozenset({"detail"}),
)
