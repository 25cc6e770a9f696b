"""What the delivery decision reads, loaded from the rows: due messages, contacts, sends."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Category, Channel, NotificationChannel, Purpose, Stage
from crm_shared import as_utc
from notification_service.db.models import Contact, ContactConsent, Notification
from notification_service.domain.delivery_policy import ContactState, PolicySettings
from notification_service.domain.rule_checks import DueMessage
from notification_service.workflows.due_rows import DueRow
from notification_service.workflows.outcomes import SENDING, SENT


async def customers(
    session: AsyncSession, customer_ids: list[str]
) -> tuple[dict[str, Contact], dict[str, ContactState | None]]:
    """The customers' contact rows, and each one's state as the decision reads it (None:
    nothing known of the customer here)."""
    contacts = {
        c.customer_id: c
        for c in await session.scalars(select(Contact).where(Contact.customer_id.in_(customer_ids)))
    }
    consents: dict[str, dict[tuple[Channel, Purpose], bool]] = defaultdict(dict)
    # The newest profiling decision on any channel speaks for the customer.
    profiling: dict[str, ContactConsent] = {}
    for consent in await session.scalars(
        select(ContactConsent).where(ContactConsent.customer_id.in_(customer_ids))
    ):
        key = (Channel(consent.channel), Purpose(consent.purpose))
        consents[consent.customer_id][key] = consent.granted
        newest = profiling.get(consent.customer_id)
        if key[1] is Purpose.PROFILING and (
            newest is None or consent.changed_at > newest.changed_at
        ):
            profiling[consent.customer_id] = consent
    states = {
        customer_id: _contact_state(
            contacts.get(customer_id),
            customer_id,
            consents[customer_id],
            customer_id in profiling and not profiling[customer_id].granted,
        )
        for customer_id in customer_ids
    }
    return contacts, states


def due_message(notification: DueRow) -> DueMessage:
    """The fields of a due row the delivery decision reads, times in UTC."""
    trigger_at = notification.trigger_at
    return DueMessage(
        notification_id=notification.notification_id,
        customer_id=notification.customer_id,
        rule_id=notification.rule_id,
        template_id=notification.template_id,
        channels=tuple(NotificationChannel(c) for c in notification.channels),
        category=Category(notification.category),
        priority=notification.priority,
        intended_at=as_utc(notification.intended_at),
        trigger_event_id=notification.trigger_event_id,
        trigger_type=notification.trigger_type,
        trigger_at=as_utc(trigger_at) if trigger_at is not None else None,
    )


async def recent_marketing_sends(
    session: AsyncSession, customers: list[str], now: datetime, policy: PolicySettings
) -> dict[str, list[datetime]]:
    """Each customer's marketing messages decided within the widest cap window."""
    window = max(policy.marketing_cap_window, policy.sliding_cap_window)
    rows = await session.execute(
        select(Notification.customer_id, Notification.decided_at).where(
            Notification.customer_id.in_(customers),
            Notification.category == Category.MARKETING.value,
            Notification.status.in_((SENDING, SENT)),
            Notification.decided_at >= now - window,
        )
    )
    sends: dict[str, list[datetime]] = defaultdict(list)
    for customer_id, decided_at in rows:
        if decided_at is not None:
            sends[customer_id].append(as_utc(decided_at))
    return sends


def _contact_state(
    contact: Contact | None,
    customer_id: str,
    consents: dict[tuple[Channel, Purpose], bool],
    objects_to_profiling: bool,
) -> ContactState | None:
    if contact is None:
        return None  # nothing known of the customer here
    return ContactState(
        customer_id=customer_id,
        time_zone=contact.time_zone,
        email=contact.email,
        phone=contact.phone,
        has_inbox=contact.known_from_profile,
        consents=consents,
        stage=Stage(contact.stage) if contact.stage else None,
        last_order_at=contact.last_order_at,
        objects_to_profiling=objects_to_profiling,
    )
