"""Keeping the purchase ledger: orders placed, refunded, cancelled; customers merged or erased."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.contracts import Money, OrderCancelled, OrderPlaced, OrderRefunded
from crm_shared.errors import UnprocessableContent
from scoring_service.db.models import Activity, Purchase, Refund, Score

SECONDS_PER_DAY = 86_400


def purchase_day(moment: datetime) -> int:
    """Whole UTC days since 1970-01-01."""
    return int(moment.timestamp() // SECONDS_PER_DAY)


def _amount_in(money: Money, currency: str) -> Decimal:
    if money.currency != currency:
        # No exchange rates here: mixing currencies would corrupt every spend figure.
        raise UnprocessableContent(
            f"amount in {money.currency}, but scores are kept in {currency}", field="currency"
        )
    return money.amount


async def _purchase(session: AsyncSession, order_id: str, customer_id: str) -> Purchase:
    row = await session.get(Purchase, order_id, with_for_update=True)
    if row is None:
        # A refund or cancellation can arrive before its order (another shop system's
        # clock, a replay): keep it, the placement fills in the rest.
        row = Purchase(
            order_id=order_id,
            customer_id=customer_id,
            amount=Decimal(0),
            refunded=Decimal(0),
            cancelled=False,
        )
        session.add(row)
        await session.flush()
    return row


async def record_placed(session: AsyncSession, order: OrderPlaced, currency: str) -> None:
    """Add an order to the ledger (a repeat of the same order id changes nothing)."""
    row = await _purchase(session, order.order_id, order.customer_id)
    if row.placed_at is not None:
        return
    row.customer_id = order.customer_id
    row.placed_at = order.placed_at
    row.purchase_day = purchase_day(order.placed_at)
    row.amount = _amount_in(order.total, currency)


async def record_refunded(session: AsyncSession, refund: OrderRefunded, currency: str) -> None:
    """Lower an order's spend by a refund, once per refund id."""
    key = f"{refund.order_id}:{refund.refund_id}"
    if await session.get(Refund, key) is not None:
        return
    amount = _amount_in(refund.amount, currency)
    session.add(Refund(refund_key=key, order_id=refund.order_id, amount=amount))
    await session.flush()  # a repeat of this refund later in the same batch must see it
    row = await _purchase(session, refund.order_id, refund.customer_id)
    row.refunded = row.refunded + amount


async def record_cancelled(session: AsyncSession, cancellation: OrderCancelled) -> None:
    """Take a cancelled order back out of the customer's history."""
    row = await _purchase(session, cancellation.order_id, cancellation.customer_id)
    row.cancelled = True


async def record_activity(
    session: AsyncSession, activity_id: str, customer_id: str, occurred_at: datetime
) -> None:
    """Count an engagement event once."""
    if await session.get(Activity, activity_id) is None:
        session.add(
            Activity(activity_id=activity_id, customer_id=customer_id, occurred_at=occurred_at)
        )


async def fold_customers(session: AsyncSession, surviving_id: str, merged_id: str) -> None:
    """After a merge, the merged customer's purchases and activity belong to the survivor."""
    await session.execute(
        update(Purchase).where(Purchase.customer_id == merged_id).values(customer_id=surviving_id)
    )
    await session.execute(
        update(Activity).where(Activity.customer_id == merged_id).values(customer_id=surviving_id)
    )
    await session.execute(delete(Score).where(Score.customer_id == merged_id))


async def forget_customer(session: AsyncSession, customer_id: str) -> None:
    """Erasure: remove everything kept about the customer."""
    order_ids = select(Purchase.order_id).where(Purchase.customer_id == customer_id)
    await session.execute(delete(Refund).where(Refund.order_id.in_(order_ids)))
    for table in (Purchase, Activity, Score):
        await session.execute(delete(table).where(table.customer_id == customer_id))
