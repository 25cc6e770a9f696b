"""The orders lifecycle remembers: enough to undo a cancelled one and to fold a merge."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import BulkWrite, among
from lifecycle_service.db.models import LifecycleOrder

ORDERS = cast(Table, LifecycleOrder.__table__)


@dataclass
class OrderFacts:
    """An order as lifecycle keeps it; ``placed_at`` is None for a cancellation seen first."""

    order_id: str
    customer_id: str
    placed_at: datetime | None
    amount: float
    cancelled: bool


class BatchOrders:
    """Orders touched by one batch: those it names, loaded once, plus those it adds."""

    def __init__(self, known: dict[str, OrderFacts]) -> None:
        self._orders = known
        self._changed: set[str] = set()

    @classmethod
    async def load(cls, session: AsyncSession, order_ids: Collection[str]) -> BatchOrders:
        """The stored orders among ``order_ids``."""
        if not order_ids:
            return cls({})
        rows = await session.execute(
            select(ORDERS).where(among(session, ORDERS.c.order_id, order_ids))
        )
        return cls({row.order_id: _facts(row) for row in rows})

    def get(self, order_id: str) -> OrderFacts | None:
        """The order if stored or added in this batch."""
        return self._orders.get(order_id)

    def put(self, order: OrderFacts) -> None:
        """Add or change an order, stored with the batch."""
        self._orders[order.order_id] = order
        self._changed.add(order.order_id)

    async def purchases_of(
        self, session: AsyncSession, customer_id: str
    ) -> list[tuple[datetime, float]]:
        """(placed_at, amount) of the customer's orders that still count."""
        rows = await session.execute(select(ORDERS).where(ORDERS.c.customer_id == customer_id))
        # What this batch holds is newer than what is stored.
        orders = {row.order_id: _facts(row) for row in rows} | self._orders
        return [
            (order.placed_at, order.amount)
            for order in orders.values()
            if order.customer_id == customer_id
            and order.placed_at is not None
            and not order.cancelled
        ]

    async def move_customer(self, session: AsyncSession, source: str, target: str) -> None:
        """Every order of ``source`` now belongs to ``target`` (a merge)."""
        await session.execute(
            update(ORDERS).where(ORDERS.c.customer_id == source).values(customer_id=target)
        )
        for order in self._orders.values():
            if order.customer_id == source:
                order.customer_id = target

    async def forget_customer(self, session: AsyncSession, customer_id: str) -> None:
        """Delete every order of the customer (an erasure)."""
        await session.execute(delete(ORDERS).where(ORDERS.c.customer_id == customer_id))
        for order_id in [o.order_id for o in self._orders.values() if o.customer_id == customer_id]:
            del self._orders[order_id]
            self._changed.discard(order_id)

    async def store(self, session: AsyncSession) -> None:
        """Write the orders this batch added or changed, in one statement."""
        rows = [
            (order.order_id, order.customer_id, order.placed_at, order.amount, order.cancelled)
            for order_id in sorted(self._changed)
            if (order := self._orders.get(order_id)) is not None
        ]
        await _STORE.run(session, rows)


_COLUMNS = ("order_id", "customer_id", "placed_at", "amount", "cancelled")
_STORE = BulkWrite(ORDERS, _COLUMNS, conflict=_COLUMNS[:1], update=_COLUMNS[1:])


def _facts(row: Any) -> OrderFacts:
    return OrderFacts(row.order_id, row.customer_id, row.placed_at, row.amount, row.cancelled)
