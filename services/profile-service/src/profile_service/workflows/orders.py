"""Order intake (HTTP and `crm.order-intake`): resolve the customer, accept each order event once,
publish it with the CRM customer id on `crm.orders`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    InvalidEvent,
    Money,
    OrderCancelled,
    OrderIntakeDocument,
    OrderPlaced,
    OrderPolicy,
    OrderRefunded,
    PlacedOrder,
    RefundedOrder,
    check_order,
)
from crm_shared.errors import UnprocessableContent
from profile_service.db.models import IntakeOrder
from profile_service.domain.contact import InvalidContact
from profile_service.domain.orders import check_refund, check_same_order, fingerprint, intake_key
from profile_service.domain.profiles import normalise_profile
from profile_service.workflows._publishing import publish
from profile_service.workflows.customers import load_customer, save_profile


@dataclass(frozen=True)
class AcceptedOrder:
    """The answer to an order post: the event it became, and whether it was a repeat."""

    event_id: str
    event_type: str
    order_id: str
    customer_id: str
    duplicate: bool


async def accept_order(
    session: AsyncSession,
    order: OrderIntakeDocument,
    *,
    policy: OrderPolicy,
    default_phone_region: str | None,
    now: datetime,
) -> AcceptedOrder:
    """Accept an order event once; a repeat returns the first acceptance.

    A new order the deployment's policy refuses (another currency, a time outside the window
    around `now`) raises `UnprocessableContent` naming the field, before anything is stored.
    """
    key = intake_key(order.type, order.order_id, getattr(order, "refund_id", None))
    digest = fingerprint(order.model_dump(mode="json"))
    existing = await session.get(IntakeOrder, key)
    if existing is not None:
        check_same_order(existing.fingerprint, digest, key)
        return AcceptedOrder(
            existing.event_id, existing.event_type, existing.order_id, existing.customer_id, True
        )
    try:
        check_order(order, policy, now)
    except InvalidEvent as refusal:
        raise UnprocessableContent(refusal.reason, field=refusal.field) from None

    placement = await session.get(IntakeOrder, intake_key("order.placed", order.order_id))
    customer_id = await _customer_for(session, order, placement, default_phone_region, now)
    payload: OrderPlaced | OrderRefunded | OrderCancelled
    amount: Money | None = None
    if isinstance(order, PlacedOrder):
        occurred_at: datetime = order.placed_at
        amount = order.total
        payload = OrderPlaced(
            order_id=order.order_id,
            customer_id=customer_id,
            placed_at=order.placed_at,
            total=order.total,
            items=order.items,
            shop_id=order.shop_id,
            channel=order.channel,
        )
    elif isinstance(order, RefundedOrder):
        occurred_at, amount = order.refunded_at, order.amount
        if placement is not None and placement.amount is not None and placement.currency:
            check_refund(
                order_total=Decimal(placement.amount),
                order_currency=placement.currency,
                already_refunded=await _refunded_so_far(session, order.order_id),
                amount=order.amount.amount,
                currency=order.amount.currency,
            )
        payload = OrderRefunded(
            order_id=order.order_id,
            refund_id=order.refund_id,
            customer_id=customer_id,
            refunded_at=order.refunded_at,
            amount=order.amount,
            reason=order.reason,
        )
    else:
        occurred_at = order.cancelled_at
        payload = OrderCancelled(
            order_id=order.order_id,
            customer_id=customer_id,
            cancelled_at=order.cancelled_at,
            reason=order.reason,
        )
    event_id = await publish(session, payload, time=occurred_at)
    session.add(
        IntakeOrder(
            intake_key=key,
            order_id=order.order_id,
            event_type=order.type,
            event_id=event_id,
            customer_id=customer_id,
            fingerprint=digest,
            amount=format(amount.amount, "f") if amount else None,
            currency=amount.currency if amount else None,
            occurred_at=occurred_at,
            received_at=now,
        )
    )
    await session.flush()
    return AcceptedOrder(event_id, order.type, order.order_id, customer_id, False)


async def _customer_for(
    session: AsyncSession,
    order: OrderIntakeDocument,
    placement: IntakeOrder | None,
    default_phone_region: str | None,
    now: datetime,
) -> str:
    if order.customer is None:
        if placement is None:
            raise UnprocessableContent(
                f"order {order.order_id} was not placed through this API; say who the customer is",
                field="customer",
            )
        return placement.customer_id
    reference = order.customer
    if reference.customer_id is not None:
        return (await load_customer(session, reference.customer_id)).id
    raw: dict[str, Any] = reference.model_dump(exclude_none=True, exclude={"customer_id"})
    try:
        changes = normalise_profile(raw, default_phone_region=default_phone_region)
    except InvalidContact as error:
        raise UnprocessableContent(error.reason, field=f"customer.{error.field}") from error
    return (await save_profile(session, changes, now=now)).customer.id


async def _refunded_so_far(session: AsyncSession, order_id: str) -> Decimal:
    amounts = await session.scalars(
        select(IntakeOrder.amount).where(
            IntakeOrder.order_id == order_id, IntakeOrder.event_type == "order.refunded"
        )
    )
    return sum((Decimal(a) for a in amounts if a is not None), Decimal(0))
