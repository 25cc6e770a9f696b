"""Consumed events: the contact replica, and triggers that queue notifications."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import as_utc, utc_now
from crm_shared.contracts import (
    ChurnWarning,
    CloudEvent,
    ConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
    OrderCancelled,
    OrderPlaced,
    ScoreUpdated,
    StageChanged,
    Topic,
)
from notification_service.db.models import Contact
from notification_service.domain.playbooks import Trigger
from notification_service.workflows import contacts
from notification_service.workflows.scheduling import schedule_notifications, with_contact_facts

NOTIFICATION_TOPICS = (Topic.CUSTOMERS, Topic.LIFECYCLE, Topic.ORDERS, Topic.SCORES)


async def apply_event(session: AsyncSession, event: CloudEvent) -> None:
    """Update the replica from ``event``; when it is a trigger, queue what the playbook says."""
    data = event.data
    trigger: Trigger | None = None
    facts: dict[str, Any] = {}
    if isinstance(data, CustomerCreated):
        await contacts.record_snapshot(session, data.customer, as_utc(event.time))
        trigger = Trigger.from_customer_created(event.id, data)
    elif isinstance(data, CustomerUpdated):
        await contacts.record_snapshot(session, data.customer, as_utc(event.time))
    elif isinstance(data, ConsentChanged):
        await contacts.record_consent(session, data.customer_id, data.consent)
    elif isinstance(data, CustomerMerged):
        await contacts.merge_contacts(session, data.customer_id, data.merged_customer_id)
    elif isinstance(data, CustomerErased):
        await contacts.erase_contact(session, data.customer_id)
    elif isinstance(data, ScoreUpdated):
        pass  # applied for the whole batch at once, by scores_of_the_batch
    elif isinstance(data, StageChanged):
        await contacts.record_stage(session, data)
        trigger = Trigger.from_stage_changed(event.id, data)
        facts = {
            "stage": {"stage": data.stage.value, "previous_stage": _value(data.previous_stage)}
        }
    elif isinstance(data, ChurnWarning):
        trigger = Trigger.from_churn_warning(event.id, data)
        facts = {
            "warning": {
                "warning_id": data.warning_id,
                "status": data.status,
                "reasons": list(data.reasons),
                "recommended_action": data.recommended_action,
            }
        }
    elif isinstance(data, OrderPlaced):
        # A redelivered order (same order id, new event id) is not a new trigger.
        first = await contacts.record_order_if_new(session, data)
        if first is not None:
            trigger = Trigger.from_order_placed(event.id, data, is_first_order=first)
            facts = {
                "order": {
                    "order_id": data.order_id,
                    "total": data.total.model_dump(mode="json"),
                }
            }
    elif isinstance(data, OrderCancelled):
        await contacts.record_cancellation(session, data)
    if trigger is not None:
        contact = await session.get(Contact, trigger.customer_id)
        await schedule_notifications(
            session, with_contact_facts(trigger, contact), facts, utc_now()
        )


async def scores_of_the_batch(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """Store the batch's ``score.updated`` events in one statement, after the others.

    Triggers earlier in the same batch were matched against the scores known before it (a
    batch is under a second of the stream). Scores of a customer erased or merged away later
    in the batch are dropped, so no contact comes back.
    """
    kept: list[ScoreUpdated] = []
    for event in events:
        data = event.data
        if isinstance(data, ScoreUpdated):
            kept.append(data)
        elif isinstance(data, CustomerErased | CustomerMerged):
            gone = data.customer_id if isinstance(data, CustomerErased) else data.merged_customer_id
            kept = [scores for scores in kept if scores.customer_id != gone]
    await contacts.record_scores(session, kept)


def _value(stage: Any) -> str | None:
    return stage.value if stage is not None else None
