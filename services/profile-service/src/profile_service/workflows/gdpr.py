"""GDPR: export everything held about a customer; erase the personal part of it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import CustomerErased
from crm_shared.errors import Gone, NotFound
from profile_service.db.models import (
    Consent,
    Customer,
    CustomerIdentity,
    CustomerTag,
    IntakeOrder,
    NotificationView,
    ScoreView,
    StageView,
)
from profile_service.domain.profiles import Profile
from profile_service.workflows._publishing import consent_state, publish
from profile_service.workflows.customers import load_customer, write_profile
from profile_service.workflows.merging import merges_of


async def export_customer(
    session: AsyncSession, customer_id: str, *, now: datetime
) -> dict[str, Any]:
    """Every record this service holds about the customer, as one JSON document."""
    customer = await load_customer(session, customer_id)
    identities = await session.scalars(
        select(CustomerIdentity).where(CustomerIdentity.customer_id == customer_id)
    )
    consents = await session.scalars(select(Consent).where(Consent.customer_id == customer_id))
    orders = await session.scalars(
        select(IntakeOrder)
        .where(IntakeOrder.customer_id == customer_id)
        .order_by(IntakeOrder.occurred_at)
    )
    notifications = await session.scalars(
        select(NotificationView)
        .where(NotificationView.customer_id == customer_id)
        .order_by(NotificationView.occurred_at)
    )
    scores = await session.get(ScoreView, customer_id)
    stage = await session.get(StageView, customer_id)
    return {
        "exported_at": now.isoformat(),
        "customer": {
            "id": customer.id,
            "external_id": customer.external_id,
            "email": customer.email,
            "phone": customer.phone,
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "time_zone": customer.time_zone,
            "locale": customer.locale,
            "attributes": customer.attributes,
            "tags": customer.tags,
            "created_at": customer.created_at.isoformat(),
            "updated_at": customer.updated_at.isoformat(),
        },
        "identities": [
            {"kind": i.kind, "value": i.value, "since": i.created_at.isoformat()}
            for i in identities
        ],
        "consents": [consent_state(c).model_dump(mode="json") for c in consents],
        "merges": [
            {
                "surviving_customer_id": m.surviving_customer_id,
                "merged_customer_id": m.merged_customer_id,
                "merged_at": m.merged_at.isoformat(),
            }
            for m in await merges_of(session, customer_id)
        ],
        "orders_received_over_http": [
            {
                "order_id": o.order_id,
                "event_type": o.event_type,
                "amount": o.amount,
                "currency": o.currency,
                "occurred_at": o.occurred_at.isoformat(),
            }
            for o in orders
        ],
        "scores": scores.scores if scores else None,
        "lifecycle": stage.stage_detail if stage else None,
        "churn_warning": stage.warning if stage else None,
        "notifications": [n.detail for n in notifications],
    }


async def erase_customer(session: AsyncSession, customer_id: str, *, now: datetime) -> None:
    """Delete personal data, keep an anonymous tombstone and order amounts, announce it."""
    customer = await session.get(Customer, customer_id, with_for_update=True)
    if customer is None:
        raise NotFound(f"No customer with id {customer_id}.")
    if customer.status == "erased":
        raise Gone(f"Customer {customer_id} was already erased.")
    customer.status = "erased"
    customer.merged_into_id = None
    write_profile(customer, Profile())
    customer.updated_at = now
    for table in (CustomerIdentity, CustomerTag, Consent, NotificationView, ScoreView, StageView):
        await session.execute(delete(table).where(table.customer_id == customer_id))
    await session.flush()
    await publish(session, CustomerErased(customer_id=customer_id, erased_at=now), time=now)
