"""Consumed events: orders, scores and customer changes, applied a batch at a time."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.contracts import CloudEvent, Topic

LIFECYCLE_TOPICS = (Topic.ORDERS, Topic.SCORES, Topic.CUSTOMERS)


async def applied_with_the_batch(session: AsyncSession, event: CloudEvent) -> None:
    """Nothing happens per event: `workflows.event_batch.apply_events` applies the batch."""
