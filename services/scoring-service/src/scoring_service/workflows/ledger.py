"""Keeping the purchase ledger: orders placed, refunded, cancelled; customers merged or erased."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scoring_service.db.models import Activity, Feedback, Purchase, Refund, Score
from scoring_service.workflows.purchase_summaries import forget_summary

SECONDS_PER_DAY = 86_400


def purchase_day(moment: datetime) -> int:
    """Whole UTC days since 1970-01-01."""
    return int(moment.timestamp() // SECONDS_PER_DAY)


async def fold_customers(session: AsyncSession, surviving_id: str, merged_id: str) -> None:
    """After a merge, the merged customer's purchases, activity and feedback go to the survivor."""
    await session.execute(
        update(Purchase).where(Purchase.customer_id == merged_id).values(customer_id=surviving_id)
    )
    for table in (Activity, Feedback):
        await session.execute(
            update(table).where(table.customer_id == merged_id).values(customer_id=surviving_id)
        )
    await session.execute(delete(Score).where(Score.customer_id == merged_id))


async def forget_customer(session: AsyncSession, customer_id: str) -> None:
    """Erasure: remove everything kept about the customer."""
    order_ids = select(Purchase.order_id).where(Purchase.customer_id == customer_id)
    await session.execute(delete(Refund).where(Refund.order_id.in_(order_ids)))
    for table in (Purchase, Activity, Feedback, Score):
        await session.execute(delete(table).where(table.customer_id == customer_id))
    await forget_summary(session, customer_id)
