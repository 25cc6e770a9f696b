"""Consumed events: orders feed the ledger, merges fold it, erasures empty it, activity counts,
profiling decisions withdraw or resume a customer's scores.

Events are applied a batch at a time (see `events.ledger_batch`): per-event statements
cannot keep up with an order stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    CloudEvent,
    CustomerErased,
    CustomerMerged,
    FeedbackRecorded,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    Topic,
)
from crm_shared import BatchFinisher, record_profiling_decisions
from scoring_service.db.models import PROFILING_DECISIONS
from scoring_service.events.ledger_batch import apply_ledger_batch
from scoring_service.workflows.pending_rescores import queue_rescores
from scoring_service.workflows.profiling import apply_profiling_changes

SCORING_TOPICS = (Topic.ORDERS, Topic.CUSTOMERS, Topic.ACTIVITIES)


_RESCORED_BY = (OrderPlaced, OrderRefunded, OrderCancelled, CustomerMerged, FeedbackRecorded)


def latest_event_per_customer(events: Sequence[CloudEvent]) -> dict[str, datetime]:
    """Customers whose purchases or feedback a batch changed, with their latest such time.

    Feedback re-scores too: the health index's satisfaction component moves with it.
    """
    latest: dict[str, datetime] = {}
    for event in events:
        if isinstance(event.data, CustomerErased):
            latest.pop(event.subject, None)
        elif isinstance(event.data, _RESCORED_BY):
            seen = latest.get(event.subject)
            latest[event.subject] = event.time if seen is None else max(seen, event.time)
    return latest


def ledger_batch() -> BatchFinisher:
    """Apply a batch to the ledger and queue the customers it touched for re-scoring."""

    async def finish(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
        await apply_ledger_batch(session, events)
        changes = await record_profiling_decisions(session, PROFILING_DECISIONS, events)
        await apply_profiling_changes(session, changes)
        await queue_rescores(session, latest_event_per_customer(events))

    return finish
