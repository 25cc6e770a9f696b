"""Events this service publishes, built from stored rows and staged in the outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    Channel,
    ConsentState,
    CustomerSnapshot,
    EventPayload,
    Purpose,
    build_event,
)
from crm_shared import add_to_outbox
from profile_service.db.models import PLUMBING, Consent, Customer, CustomerIdentity
from profile_service.domain.profiles import contact_values

SOURCE = "/crm/profile-service"


async def publish(session: AsyncSession, payload: EventPayload, *, time: datetime) -> str:
    """Stage an event in the outbox of this transaction; return its id."""
    event = build_event(payload, source=SOURCE, time=time)
    await add_to_outbox(session, PLUMBING, event)
    return event.id


async def snapshot(session: AsyncSession, customer: Customer) -> CustomerSnapshot:
    """The customer's full profile as other services receive it."""
    external_ids = (
        await session.scalars(
            select(CustomerIdentity.value)
            .where(
                CustomerIdentity.customer_id == customer.id,
                CustomerIdentity.kind == "external_id",
            )
            .order_by(CustomerIdentity.created_at, CustomerIdentity.value)
        )
    ).all()
    consents = (
        await session.scalars(select(Consent).where(Consent.customer_id == customer.id))
    ).all()
    return CustomerSnapshot(
        customer_id=customer.id,
        external_ids=list(external_ids),
        **contact_values(customer),
        tags=list(customer.tags),
        attributes=dict(customer.attributes),
        consents=[consent_state(row) for row in consents],
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


def consent_state(row: Consent) -> ConsentState:
    """A stored consent as the event contract states it."""
    return ConsentState(
        channel=Channel(row.channel),
        purpose=Purpose(row.purpose),
        granted=row.granted,
        source=row.source,
        changed_at=row.changed_at,
    )
