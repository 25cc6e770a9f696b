"""What the delivery decision reads, loaded from the rows: due messages, contacts, sends."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Category, Channel, NotificationChannel, Purpose, Stage
from crm_shared import as_utc
from notification_service.db.models import (
    CONTACT_CONSENTS,
    CONTACTS,
    Contact,
    Notification,
    NotificationStates,
)
from notification_service.domain.delivery_policy import ContactState, PolicySettings
from notification_service.domain.rule_checks import DueMessage
from notification_service.workflows import stream_sql
from notification_service.workflows.due_rows import DueRow


async def customers(
    session: AsyncSession, customer_ids: list[str]
) -> dict[str, ContactState | None]:
    """Each customer's state as the decision reads it (None: nothing known of the customer
    here). Plain columns: the scores document and the rest a template reads are loaded by
    :func:`contacts` for the customers a message is rendered for."""
    found: Iterable[Any]
    consent_rows: Iterable[Any]
    if stream_sql.is_postgres(session):
        # Fixed texts with one array parameter: an expanding IN is compiled again for every
        # number of customers, and a batch's new customers are a few hundred.
        found, consent_rows = await stream_sql.delivery_states(session, customer_ids)
    else:
        found = await session.execute(
            select(*[CONTACTS.c[name] for name in _STATE_COLUMNS]).where(
                CONTACTS.c.customer_id.in_(customer_ids)
            )
        )
        table = CONTACT_CONSENTS
        consent_rows = await session.execute(
            select(*[table.c[name] for name in _CONSENT_COLUMNS]).where(
                table.c.customer_id.in_(customer_ids)
            )
        )
    contacts = {row.customer_id: row for row in found}
    consents: dict[str, dict[tuple[Channel, Purpose], bool]] = defaultdict(dict)
    # The newest profiling decision on any channel speaks for the customer.
    profiling: dict[str, tuple[datetime, bool]] = {}
    for customer_id, channel, purpose, granted, changed_at in consent_rows:
        key = (Channel(channel), Purpose(purpose))
        consents[customer_id][key] = granted
        newest = profiling.get(customer_id)
        if key[1] is Purpose.PROFILING and (newest is None or changed_at > newest[0]):
            profiling[customer_id] = (changed_at, granted)
    return {
        customer_id: _contact_state(
            contacts.get(customer_id),
            customer_id,
            consents[customer_id],
            customer_id in profiling and not profiling[customer_id][1],
        )
        for customer_id in customer_ids
    }


async def contacts(session: AsyncSession, customer_ids: Collection[str]) -> dict[str, Contact]:
    """The customers' whole contact rows, for rendering (by id; unknown ones absent)."""
    if not customer_ids:
        return {}
    return {
        c.customer_id: c
        for c in await session.scalars(
            select(Contact).where(Contact.customer_id.in_(sorted(customer_ids)))
        )
    }


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
            text(NotificationStates.MARKETING_SENDS),
            Notification.decided_at >= now - window,
        )
    )
    sends: dict[str, list[datetime]] = defaultdict(list)
    for customer_id, decided_at in rows:
        if decided_at is not None:
            sends[customer_id].append(as_utc(decided_at))
    return sends


# What a delivery decision reads of a contact, and of its consents.
_STATE_COLUMNS = stream_sql.STATE_COLUMNS
_CONSENT_COLUMNS = stream_sql.CONSENT_COLUMNS


def _contact_state(
    contact: Any,
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
