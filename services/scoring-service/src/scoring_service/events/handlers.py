"""Consumed events: orders feed the ledger, merges fold it, erasures empty it, activity counts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.contracts import (
    ActivityRecorded,
    CloudEvent,
    CustomerErased,
    CustomerMerged,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
    Topic,
)
from scoring_service.workflows import ledger

SCORING_TOPICS = (Topic.ORDERS, Topic.CUSTOMERS, Topic.ACTIVITIES)

Rescorer = Callable[[AsyncSession, dict[str, datetime]], Awaitable[None]]


def ledger_handler(currency: str) -> Callable[[AsyncSession, CloudEvent], Awaitable[None]]:
    """Apply one event to the ledger."""

    async def apply(session: AsyncSession, event: CloudEvent) -> None:
        data = event.data
        if isinstance(data, OrderPlaced):
            await ledger.record_placed(session, data, currency)
        elif isinstance(data, OrderRefunded):
            await ledger.record_refunded(session, data, currency)
        elif isinstance(data, OrderCancelled):
            await ledger.record_cancelled(session, data)
        elif isinstance(data, CustomerMerged):
            await ledger.fold_customers(session, data.customer_id, data.merged_customer_id)
        elif isinstance(data, CustomerErased):
            await ledger.forget_customer(session, data.customer_id)
        elif isinstance(data, ActivityRecorded):
            await ledger.record_activity(
                session, data.activity_id, data.customer_id, data.occurred_at
            )

    return apply


def rescore_touched(
    rescore: Rescorer,
) -> Callable[[AsyncSession, Sequence[CloudEvent]], Awaitable[None]]:
    """After a batch, re-score each customer it touched, as of that customer's latest event."""

    async def finish(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
        latest: dict[str, datetime] = {}
        for event in events:
            if isinstance(event.data, CustomerErased):
                latest.pop(event.subject, None)
                continue
            if isinstance(
                event.data, OrderPlaced | OrderRefunded | OrderCancelled | CustomerMerged
            ):
                seen = latest.get(event.subject)
                latest[event.subject] = event.time if seen is None else max(seen, event.time)
        if latest:
            await rescore(session, latest)

    return finish
