"""Consumed events: the contact replica, and triggers that queue notifications.

A batch is applied in stream order. Runs of order, score, stage, warning, activity and
feedback events (nearly the whole stream) go through
:mod:`~notification_service.events.stream_events` in bulk; profile events (customer,
consent, merge, erasure), cancellations and refunds are rare and applied one at a time between runs,
so every event still sees the effect of the ones before it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    CloudEvent,
    ConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
    OrderCancelled,
    OrderRefunded,
    Topic,
)
from crm_shared import as_utc, utc_now
from notification_service.db.models import Contact
from notification_service.domain.delivery_decision import DecisionSettings
from notification_service.domain.playbooks import Trigger
from notification_service.events.stream_events import apply_stream_events, is_stream_event
from notification_service.workflows import contacts
from notification_service.workflows.scheduling import schedule_notifications, with_contact_facts

NOTIFICATION_TOPICS = (
    Topic.CUSTOMERS,
    Topic.LIFECYCLE,
    Topic.ORDERS,
    Topic.SCORES,
    Topic.ACTIVITIES,
)


async def apply_events(
    session: AsyncSession,
    events: Sequence[CloudEvent],
    decisions: DecisionSettings | None = None,
) -> None:
    """Apply a consumed batch (in stream order) in the caller's transaction; ``decisions``:
    the delivery loop's settings, to store a new customer's unsendable messages decided."""
    now = utc_now()
    run: list[CloudEvent] = []
    for event in events:
        if is_stream_event(event):
            run.append(event)
            continue
        if run:
            await apply_stream_events(session, run, now, decisions)
            run = []
        await _apply_one(session, event)
    if run:
        await apply_stream_events(session, run, now, decisions)


async def _apply_one(session: AsyncSession, event: CloudEvent) -> None:
    data = event.data
    if isinstance(data, CustomerCreated):
        await contacts.record_snapshot(session, data.customer, as_utc(event.time))
        contact = await session.get(Contact, data.customer.customer_id)
        trigger = Trigger.from_customer_created(event.id, data)
        await schedule_notifications(session, with_contact_facts(trigger, contact), {}, utc_now())
    elif isinstance(data, CustomerUpdated):
        await contacts.record_snapshot(session, data.customer, as_utc(event.time))
    elif isinstance(data, ConsentChanged):
        await contacts.record_consent(session, data.customer_id, data.consent)
    elif isinstance(data, CustomerMerged):
        await contacts.merge_contacts(session, data.customer_id, data.merged_customer_id)
    elif isinstance(data, CustomerErased):
        await contacts.erase_contact(session, data.customer_id)
    elif isinstance(data, OrderCancelled):
        await contacts.record_cancellation(session, data)
    elif isinstance(data, OrderRefunded):
        await contacts.record_refund(session, data)
