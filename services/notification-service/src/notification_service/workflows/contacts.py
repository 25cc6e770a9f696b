"""The contact replica: how to reach each customer, their consents, scores, stage and orders.

Kept from ``customer.*``, ``consent.changed``, ``score.updated``, ``lifecycle.stage_changed`` and
``order.*`` events, so deciding and rendering a message never calls another service.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    ConsentState,
    CustomerSnapshot,
    OrderCancelled,
    OrderRefunded,
    ScoreUpdated,
)
from crm_shared import as_utc, upsert_into
from notification_service.db.models import (
    CONTACT_ORDER_REFUNDS,
    CONTACT_ORDERS,
    CONTACTS,
    Contact,
    ContactConsent,
    ContactOrder,
    ContactOrderRefund,
    InboxMessage,
    Notification,
)
from notification_service.workflows import stream_sql


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


@dataclass(slots=True)
class StreamContact:
    """A contact's columns the order, score and stage stream reads and writes, as plain data.

    A run of stream events touches hundreds of contacts; mapped objects cost more to load,
    track and flush than the few statements the run needs, so it works on these instead.
    """

    customer_id: str
    scores: dict[str, Any]
    stage: str | None = None
    previous_stage: str | None = None
    value_tier: str | None = None
    grade: str | None = None
    churn_risk: float | None = None
    rfm_segment: str | None = None
    cluster: str | None = None
    predicted_clv_12m: str | None = None
    order_count: int = 0
    last_order_at: datetime | None = None


# The columns of Contact that StreamContact carries, in its field order.
STREAM_COLUMNS = tuple(field.name for field in fields(StreamContact))


def stream_values(contact: StreamContact) -> tuple[Any, ...]:
    """The contact's stream columns as a tuple, to tell whether a run changed any."""
    return tuple(getattr(contact, name) for name in STREAM_COLUMNS)


def empty_contact(customer_id: str) -> StreamContact:
    """A contact for a customer seen in an order, score or stage before (or without) a profile."""
    return StreamContact(customer_id=customer_id, scores={})


def apply_scores(contact: StreamContact, scores: ScoreUpdated) -> bool:
    """Keep the scores templates and rule conditions read, unless newer ones are kept already;
    whether they were kept."""
    kept_as_of = contact.scores.get("as_of") if contact.scores else None
    if kept_as_of is not None and as_utc(datetime.fromisoformat(kept_as_of)) > as_utc(scores.as_of):
        return False
    clv = scores.predicted_clv_12m
    contact.scores = scores.model_dump(mode="json")
    contact.value_tier = scores.value_tier.value if scores.value_tier else None
    contact.grade = scores.grade.value if scores.grade else None
    contact.churn_risk = scores.churn_risk
    contact.rfm_segment = scores.rfm_segment
    contact.cluster = scores.cluster
    contact.predicted_clv_12m = f"{clv.amount} {clv.currency}" if clv else None
    return True


def count_order(contact: StreamContact, placed_at: datetime) -> None:
    """Count a new order placed at ``placed_at`` in the contact's order count and last order."""
    contact.order_count = (contact.order_count or 0) + 1
    if contact.last_order_at is None or placed_at > contact.last_order_at:
        contact.last_order_at = placed_at


async def load_stream_contacts(
    session: AsyncSession, customer_ids: Collection[str]
) -> dict[str, StreamContact]:
    """The stored contacts among ``customer_ids``, by id."""
    if stream_sql.is_postgres(session):
        found = await stream_sql.load_contacts(session, customer_ids)
    else:
        columns = [CONTACTS.c[name] for name in STREAM_COLUMNS]
        found = list(
            await session.execute(
                select(*columns).where(Contact.customer_id.in_(list(customer_ids)))
            )
        )
    return {row[0]: StreamContact(*row) for row in found}


async def insert_stream_contacts(
    session: AsyncSession, new: Sequence[tuple[StreamContact, datetime]]
) -> None:
    """Insert contacts first seen in the stream, each with the moment it was first seen."""
    if not new:
        return
    if stream_sql.is_postgres(session):
        rows = [{**_stream_values(contact), "updated_at": at} for contact, at in new]
        await stream_sql.insert_contacts(session, rows)
        return
    await session.execute(
        insert(CONTACTS),
        [
            {
                **_stream_values(contact),
                "attributes": {},
                "tags": [],
                "known_from_profile": False,
                "updated_at": first_seen,
            }
            for contact, first_seen in new
        ],
    )


async def update_stream_contacts(session: AsyncSession, changed: Sequence[StreamContact]) -> None:
    """Write the stream's columns of stored contacts back, one statement for them all."""
    if not changed:
        return
    if stream_sql.is_postgres(session):
        await stream_sql.update_contacts(session, [_stream_values(c) for c in changed])
        return
    rows = []
    for contact in changed:
        row = _stream_values(contact)
        row["key"] = row.pop("customer_id")
        rows.append(row)
    # The SET clause is made of the columns named by the rows' keys.
    await session.execute(update(CONTACTS).where(CONTACTS.c.customer_id == bindparam("key")), rows)


async def known_orders_and_buyers(
    session: AsyncSession, order_ids: Collection[str], customer_ids: Collection[str]
) -> tuple[set[str], set[str]]:
    """Which of ``order_ids`` are stored, and which of ``customer_ids`` have an order that
    is not cancelled (so their next order is not their first)."""
    if stream_sql.is_postgres(session):
        return await stream_sql.known_orders_and_buyers(session, order_ids, customer_ids)
    known = await session.scalars(
        select(ContactOrder.order_id).where(ContactOrder.order_id.in_(sorted(order_ids)))
    )
    buyers = await session.scalars(
        select(ContactOrder.customer_id)
        .where(
            ContactOrder.customer_id.in_(sorted(customer_ids)), ContactOrder.cancelled.is_(False)
        )
        .distinct()
    )
    return set(known), set(buyers)


async def insert_orders(session: AsyncSession, orders: Sequence[dict[str, Any]]) -> None:
    """Store new orders (order_id, customer_id, placed_at, total; none cancelled yet)."""
    if not orders:
        return
    if stream_sql.is_postgres(session):
        await stream_sql.insert_orders(session, orders)
        return
    await session.execute(
        insert(CONTACT_ORDERS), [{**order, "cancelled": False} for order in orders]
    )


def _stream_values(contact: StreamContact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in STREAM_COLUMNS}


async def record_cancellation(session: AsyncSession, cancelled: OrderCancelled) -> None:
    """A cancelled order no longer counts as a purchase."""
    await session.execute(
        update(ContactOrder)
        .where(ContactOrder.order_id == cancelled.order_id)
        .values(cancelled=True)
    )


async def record_refund(session: AsyncSession, refund: OrderRefunded) -> None:
    """Money given back on an order: once per refund id, whatever the event's redeliveries."""
    values = {
        "refund_id": refund.refund_id,
        "order_id": refund.order_id,
        "amount": refund.amount.amount,
        "refunded_at": as_utc(refund.refunded_at),
    }
    statement = upsert_into(session, CONTACT_ORDER_REFUNDS).on_conflict_do_nothing(
        index_elements=[CONTACT_ORDER_REFUNDS.c.refund_id]
    )
    await session.execute(statement, [values])


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
    """Fold the merged customer's orders and messages (queued and decided) into the survivor's.

    Decided messages move too: they are the same person's, so they count against the
    survivor's cap, and the effect report finds the survivor's orders after their triggers.
    """
    await session.execute(
        update(ContactOrder).where(ContactOrder.customer_id == merged).values(customer_id=survivor)
    )
    await session.execute(
        update(Notification).where(Notification.customer_id == merged).values(customer_id=survivor)
    )
    await session.execute(
        update(InboxMessage).where(InboxMessage.customer_id == merged).values(customer_id=survivor)
    )
    await session.execute(delete(ContactConsent).where(ContactConsent.customer_id == merged))
    await session.execute(delete(Contact).where(Contact.customer_id == merged))


async def erase_contact(session: AsyncSession, customer_id: str) -> None:
    """Forget everything about the customer: contact, consents, orders, messages and log."""
    await session.execute(
        delete(ContactOrderRefund).where(
            ContactOrderRefund.order_id.in_(
                select(ContactOrder.order_id).where(ContactOrder.customer_id == customer_id)
            )
        )
    )
    for model in (ContactConsent, ContactOrder, InboxMessage, Notification, Contact):
        await session.execute(delete(model).where(model.customer_id == customer_id))
