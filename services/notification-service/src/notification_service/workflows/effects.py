"""The effect report's data: each rule's assigned customers and their orders, measured.

Assignments are the delivery log's rows whose hold-out check ran (``notifications.assignment``);
orders are the replica's ``contact_orders`` with their refunds, which follow merges and
cancellations as the events arrive, so the report is computed afresh on every request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, cast

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import as_utc
from notification_service.db.models import ContactOrder, ContactOrderRefund, Notification
from notification_service.domain.effects import Exposure, OrderFact, RuleEffect, measure_effect
from notification_service.domain.holdout import Group

# Customers per IN list: far below PostgreSQL's 32,767 bind parameters.
_CHUNK: Final = 5_000


@dataclass(frozen=True)
class EffectQuery:
    """Which triggers to count: of one rule or all, in [triggered_from, triggered_to)."""

    rule_id: str | None
    triggered_from: datetime
    triggered_to: datetime
    window: timedelta


@dataclass(frozen=True)
class MeasuredRule:
    """One rule's effect with the trigger type its assignments came from."""

    rule_id: str
    trigger_types: tuple[str, ...]
    effect: RuleEffect


async def measure_rules(
    session: AsyncSession, query: EffectQuery, as_of: datetime
) -> list[MeasuredRule]:
    """Every rule with assigned customers in the period (or the one asked for), by rule id."""
    statement = select(
        Notification.rule_id,
        Notification.customer_id,
        Notification.assignment,
        Notification.intended_at,
        Notification.trigger_type,
    ).where(
        Notification.assignment.is_not(None),
        Notification.trigger_at >= query.triggered_from,
        Notification.trigger_at < query.triggered_to,
    )
    if query.rule_id is not None:
        statement = statement.where(Notification.rule_id == query.rule_id)
    assigned: dict[str, list[tuple[str, Group, datetime, str]]] = defaultdict(list)
    # The window starts when the rule wanted the message sent (trigger plus delay).
    for rule_id, customer_id, group, intended_at, trigger_type in await session.execute(statement):
        if rule_id is None:
            continue
        assigned[rule_id].append(
            (customer_id, cast(Group, group), as_utc(intended_at), trigger_type or "")
        )
    customers = sorted({row[0] for rows in assigned.values() for row in rows})
    starts = [row[2] for rows in assigned.values() for row in rows]
    orders = (
        await _orders_of(session, customers, min(starts), max(starts) + query.window)
        if starts
        else {}
    )
    measured = []
    for rule_id in sorted(assigned):
        rows = assigned[rule_id]
        exposures = [
            Exposure(customer, group, at, trigger_type, orders.get(customer, ()))
            for customer, group, at, trigger_type in rows
        ]
        effect = measure_effect(exposures, query.window, as_of)
        trigger_types = tuple(sorted({row[3] for row in rows}))
        measured.append(MeasuredRule(rule_id, trigger_types, effect))
    return measured


async def _orders_of(
    session: AsyncSession, customers: Sequence[str], start: datetime, end: datetime
) -> dict[str, tuple[OrderFact, ...]]:
    """The customers' orders placed in [start, end], each with the sum of its refunds."""
    refunds = (
        select(ContactOrderRefund.order_id, func.sum(ContactOrderRefund.amount).label("refunded"))
        .group_by(ContactOrderRefund.order_id)
        .subquery()
    )
    found: dict[str, list[OrderFact]] = defaultdict(list)
    for offset in range(0, len(customers), _CHUNK):
        rows = await session.execute(
            select(
                ContactOrder.customer_id,
                ContactOrder.placed_at,
                ContactOrder.total,
                ContactOrder.cancelled,
                refunds.c.refunded,
            )
            .outerjoin(refunds, refunds.c.order_id == ContactOrder.order_id)
            .where(
                ContactOrder.customer_id.in_(customers[offset : offset + _CHUNK]),
                ContactOrder.placed_at >= start,
                ContactOrder.placed_at <= end,
            )
        )
        for customer_id, placed_at, total, cancelled, refunded in rows:
            found[customer_id].append(
                OrderFact(
                    placed_at=as_utc(placed_at),
                    total=Decimal(str(total)) if total is not None else Decimal(0),
                    refunded=Decimal(str(refunded)) if refunded is not None else Decimal(0),
                    cancelled=bool(cancelled),
                )
            )
    return {customer: tuple(facts) for customer, facts in found.items()}
