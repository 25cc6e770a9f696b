"""The contact replica: how to reach each customer, their consents, scores, stage and orders.

Kept from ``customer.*``, ``consent.changed``, ``score.updated``, ``lifecycle.stage_changed`` and
``order.*`` events, so deciding and rendering a message never calls another service.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import as_utc, upsert_into
from crm_shared.contracts import (
    ConsentState,
    CustomerSnapshot,
    OrderCancelled,
    OrderPlaced,
    ScoreUpdated,
    StageChanged,
)
from notification_service.db.models import (
    Contact,
    ContactConsent,
    ContactOrder,
    InboxMessage,
    Notification,
)


async def record_snapshot(session: AsyncSession, snapshot: CustomerSnapshot, at: datetime) -> None:
    """Create or refresh a contact from profile-service's snapshot, consents included."""
    values: dict[str, Any] = {
        "customer_id": snapshot.customer_id,
        "email": snapshot.email,
        "phone": snapshot.phone,
        "first_name": snapshot.first_name,
        "last_name": snapshot.last_name,
        "time_zone": snapshot.time_zone,
        "locale": snapshot.locale,
        "attributes": snapshot.attributes,
        "tags": snapshot.tags,
        "known_from_profile": True,
        "updated_at": as_utc(at),
    }
    statement = upsert_into(session, Contact).values(**values, order_count=0, scores={})
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Contact.customer_id],
            set_={name: statement.excluded[name] for name in values if name != "customer_id"},
        )
    )
    for consent in snapshot.consents:
        await record_consent(session, snapshot.customer_id, consent)


async def record_consent(session: AsyncSession, customer_id: str, consent: ConsentState) -> None:
    """Keep a consent decision unless a newer one for the same channel and purpose is stored."""
    values = {
        "customer_id": customer_id,
        "channel": consent.channel.value,
        "purpose": consent.purpose.value,
        "granted": consent.granted,
        "changed_at": as_utc(consent.changed_at),
        "source": consent.source,
    }
    statement = upsert_into(session, ContactConsent).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[
                ContactConsent.customer_id,
                ContactConsent.channel,
                ContactConsent.purpose,
            ],
            set_={
                "granted": statement.excluded.granted,
                "changed_at": statement.excluded.changed_at,
                "source": statement.excluded.source,
            },
            where=ContactConsent.changed_at <= statement.excluded.changed_at,
        )
    )


async def ensure_contact(session: AsyncSession, customer_id: str, at: datetime) -> Contact:
    """The contact, created empty when an event about them arrives before their profile."""
    contact = await session.get(Contact, customer_id)
    if contact is None:
        contact = Contact(
            customer_id=customer_id,
            attributes={},
            tags=[],
            scores={},
            order_count=0,
            updated_at=at,
        )
        session.add(contact)
    return contact


async def record_scores(session: AsyncSession, batch: Sequence[ScoreUpdated]) -> None:
    """Keep the scores templates and rule conditions read, a whole batch in one statement.

    Scores arrive about once per order; one upsert for the batch instead of a read and a
    write per event. Only each customer's newest scores of the batch are kept.
    """
    newest: dict[str, ScoreUpdated] = {}
    for scores in batch:
        kept = newest.get(scores.customer_id)
        if kept is None or scores.as_of >= kept.as_of:
            newest[scores.customer_id] = scores
    if not newest:
        return
    rows = [_score_columns(scores) for scores in newest.values()]
    statement = upsert_into(session, Contact)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Contact.customer_id],
            set_={name: statement.excluded[name] for name in _SCORE_COLUMNS},
        ),
        rows,
    )


_SCORE_COLUMNS = (
    "scores",
    "value_tier",
    "grade",
    "churn_risk",
    "rfm_segment",
    "cluster",
    "predicted_clv_12m",
)


def _score_columns(scores: ScoreUpdated) -> dict[str, Any]:
    clv = scores.predicted_clv_12m
    return {
        "customer_id": scores.customer_id,
        "scores": scores.model_dump(mode="json"),
        "value_tier": scores.value_tier.value if scores.value_tier else None,
        "grade": scores.grade.value if scores.grade else None,
        "churn_risk": scores.churn_risk,
        "rfm_segment": scores.rfm_segment,
        "cluster": scores.cluster,
        "predicted_clv_12m": f"{clv.amount} {clv.currency}" if clv else None,
        # Only used when the customer is new here: a contact known so far from nothing else.
        "attributes": {},
        "tags": [],
        "order_count": 0,
        "known_from_profile": False,
        "updated_at": as_utc(scores.as_of),
    }


async def record_stage(session: AsyncSession, change: StageChanged) -> None:
    """Keep the customer's lifecycle stage."""
    contact = await ensure_contact(session, change.customer_id, as_utc(change.changed_at))
    contact.stage = change.stage.value
    contact.previous_stage = change.previous_stage.value if change.previous_stage else None


async def record_order_if_new(session: AsyncSession, order: OrderPlaced) -> bool | None:
    """Remember an order: True when it is the customer's first, None when already known."""
    if await session.get(ContactOrder, order.order_id) is not None:
        return None
    contact = await ensure_contact(session, order.customer_id, as_utc(order.placed_at))
    earlier = await session.scalar(
        select(ContactOrder.order_id)
        .where(ContactOrder.customer_id == order.customer_id, ContactOrder.cancelled.is_(False))
        .limit(1)
    )
    session.add(
        ContactOrder(
            order_id=order.order_id,
            customer_id=order.customer_id,
            placed_at=as_utc(order.placed_at),
            cancelled=False,
        )
    )
    contact.order_count = (contact.order_count or 0) + 1
    placed = as_utc(order.placed_at)
    if contact.last_order_at is None or placed > contact.last_order_at:
        contact.last_order_at = placed
    return earlier is None


async def record_cancellation(session: AsyncSession, cancelled: OrderCancelled) -> None:
    """A cancelled order no longer counts as a purchase."""
    await session.execute(
        update(ContactOrder)
        .where(ContactOrder.order_id == cancelled.order_id)
        .values(cancelled=True)
    )


async def ordered_since(session: AsyncSession, customer_id: str, moment: datetime) -> bool:
    """Whether the customer placed an order (not cancelled) after ``moment``."""
    found = await session.scalar(
        select(ContactOrder.order_id)
        .where(
            ContactOrder.customer_id == customer_id,
            ContactOrder.placed_at > moment,
            ContactOrder.cancelled.is_(False),
        )
        .limit(1)
    )
    return found is not None


async def merge_contacts(session: AsyncSession, survivor: str, merged: str) -> None:
    """Fold the merged customer's orders and pending messages into the survivor's."""
    await session.execute(
        update(ContactOrder).where(ContactOrder.customer_id == merged).values(customer_id=survivor)
    )
    await session.execute(
        update(Notification)
        .where(Notification.customer_id == merged, Notification.status == "scheduled")
        .values(customer_id=survivor)
    )
    await session.execute(
        update(InboxMessage).where(InboxMessage.customer_id == merged).values(customer_id=survivor)
    )
    await session.execute(delete(ContactConsent).where(ContactConsent.customer_id == merged))
    await session.execute(delete(Contact).where(Contact.customer_id == merged))


async def erase_contact(session: AsyncSession, customer_id: str) -> None:
    """Forget everything about the customer: contact, consents, orders, messages and log."""
    for model in (ContactConsent, ContactOrder, InboxMessage, Notification, Contact):
        await session.execute(delete(model).where(model.customer_id == customer_id))
