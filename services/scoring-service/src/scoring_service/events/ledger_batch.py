"""Order and activity events applied a batch at a time: a few statements a batch, not an event."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    ActivityRecorded,
    CloudEvent,
    CustomerErased,
    CustomerMerged,
    FeedbackRecorded,
    OrderCancelled,
    OrderPlaced,
    OrderRefunded,
)
from crm_shared import BulkWrite, among
from scoring_service.db.models import Activity, Feedback, Purchase, Refund
from scoring_service.workflows.ledger import (
    fold_customers,
    forget_customer,
    purchase_day,
)

_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-parameter limit

_INSERT_PURCHASES = BulkWrite(
    cast(Table, Purchase.__table__),
    (
        "order_id",
        "customer_id",
        "placed_at",
        "purchase_day",
        "amount",
        "refunded",
        "cancelled",
    ),
)

LedgerEvent = OrderPlaced | OrderRefunded | OrderCancelled | ActivityRecorded | FeedbackRecorded


async def apply_ledger_batch(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """Apply a batch in order: runs of order/activity events in bulk, merges and erasures
    between them one by one, so an order after a merge lands where it belongs.

    Orders arrive judged by the deployment's order policy (crm_contracts.check_order,
    applied as the consumer decodes them): every amount is in the accounting currency."""
    run: list[LedgerEvent] = []
    for event in events:
        data = event.data
        if isinstance(data, LedgerEvent):
            run.append(data)
            continue
        await _apply_run(session, run)
        run = []
        if isinstance(data, CustomerMerged):
            await fold_customers(session, data.customer_id, data.merged_customer_id)
        elif isinstance(data, CustomerErased):
            await forget_customer(session, data.customer_id)
    await _apply_run(session, run)


async def _existing(session: AsyncSession, column: Any, keys: set[str]) -> set[str]:
    if not keys:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        return set(await session.scalars(select(column).where(among(session, column, keys))))
    found: set[str] = set()
    ordered = sorted(keys)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        found.update(await session.scalars(select(column).where(column.in_(chunk))))
    return found


async def _apply_run(session: AsyncSession, run: Sequence[LedgerEvent]) -> None:
    if not run:
        return
    placed: dict[str, OrderPlaced] = {}
    refunds: dict[str, OrderRefunded] = {}
    cancelled: dict[str, OrderCancelled] = {}
    activities: dict[str, ActivityRecorded] = {}
    feedback: dict[str, FeedbackRecorded] = {}
    for data in run:
        if isinstance(data, OrderPlaced):
            placed.setdefault(data.order_id, data)
        elif isinstance(data, OrderRefunded):
            refunds.setdefault(f"{data.order_id}:{data.refund_id}", data)
        elif isinstance(data, OrderCancelled):
            cancelled.setdefault(data.order_id, data)
        elif isinstance(data, FeedbackRecorded):
            feedback.setdefault(data.feedback_id, data)
        else:
            activities.setdefault(data.activity_id, data)
    await _place(session, placed)
    await _add_placeholders(session, {r.order_id: r.customer_id for r in refunds.values()})
    await _add_placeholders(session, {c.order_id: c.customer_id for c in cancelled.values()})
    await _refund(session, refunds)
    if cancelled:
        for start in range(0, len(cancelled), _CHUNK):
            chunk = sorted(cancelled)[start : start + _CHUNK]
            await session.execute(
                update(Purchase).where(Purchase.order_id.in_(chunk)).values(cancelled=True)
            )
    fresh = set(activities) - await _existing(session, Activity.activity_id, set(activities))
    if fresh:
        await session.execute(
            insert(Activity),
            [
                {
                    "activity_id": key,
                    "customer_id": activities[key].customer_id,
                    "occurred_at": activities[key].occurred_at,
                    "activity_type": activities[key].activity_type,
                }
                for key in sorted(fresh)
            ],
        )
    await _record_feedback(session, feedback)


async def _record_feedback(session: AsyncSession, feedback: dict[str, FeedbackRecorded]) -> None:
    # Each report once, by its feedback id (a shop re-sending one does not count twice).
    fresh = set(feedback) - await _existing(session, Feedback.feedback_id, set(feedback))
    if not fresh:
        return
    rows = [feedback[key] for key in sorted(fresh)]
    await session.execute(
        insert(Feedback),
        [
            {
                "feedback_id": report.feedback_id,
                "customer_id": report.customer_id,
                "kind": report.kind.value,
                "occurred_at": report.occurred_at,
                "survey": report.survey.value if report.survey is not None else None,
                "score": report.score,
                "ticket_id": report.ticket_id,
            }
            for report in rows
        ],
    )


async def _place(session: AsyncSession, placed: dict[str, OrderPlaced]) -> None:
    if not placed:
        return
    if session.get_bind().dialect.name == "postgresql":
        query = select(Purchase.order_id, Purchase.placed_at).where(
            among(session, Purchase.order_id, list(placed))
        )
        rows = {row.order_id: row.placed_at for row in (await session.execute(query)).all()}
    else:
        rows = {
            row.order_id: row.placed_at
            for start in range(0, len(placed), _CHUNK)
            for row in (
                await session.execute(
                    select(Purchase.order_id, Purchase.placed_at).where(
                        Purchase.order_id.in_(sorted(placed)[start : start + _CHUNK])
                    )
                )
            ).all()
        }
    zero = Decimal(0)
    await _INSERT_PURCHASES.run(
        session,
        [
            (
                order.order_id,
                order.customer_id,
                order.placed_at,
                purchase_day(order.placed_at),
                order.total.amount,
                zero,
                False,
            )
            for order_id, order in placed.items()
            if order_id not in rows
        ],
    )
    # Rows a refund or cancellation created before the placement arrived: fill them in.
    late = [
        order for order_id, order in placed.items() if order_id in rows and rows[order_id] is None
    ]
    for order in late:
        await session.execute(
            update(Purchase)
            .where(Purchase.order_id == order.order_id)
            .values(
                customer_id=order.customer_id,
                placed_at=order.placed_at,
                purchase_day=purchase_day(order.placed_at),
                amount=order.total.amount,
            )
        )


async def _add_placeholders(session: AsyncSession, customer_of_order: dict[str, str]) -> None:
    if not customer_of_order:
        return
    known = await _existing(session, Purchase.order_id, set(customer_of_order))
    missing = sorted(set(customer_of_order) - known)
    if missing:
        await session.execute(
            insert(Purchase),
            [
                {
                    "order_id": order_id,
                    "customer_id": customer_of_order[order_id],
                    "amount": Decimal(0),
                    "refunded": Decimal(0),
                    "cancelled": False,
                }
                for order_id in missing
            ],
        )


async def _refund(session: AsyncSession, refunds: dict[str, OrderRefunded]) -> None:
    fresh = set(refunds) - await _existing(session, Refund.refund_key, set(refunds))
    if not fresh:
        return
    await session.execute(
        insert(Refund),
        [
            {
                "refund_key": key,
                "order_id": refunds[key].order_id,
                "amount": refunds[key].amount.amount,
            }
            for key in sorted(fresh)
        ],
    )
    per_order: dict[str, Decimal] = defaultdict(Decimal)
    for key in fresh:
        per_order[refunds[key].order_id] += refunds[key].amount.amount
    purchases = cast(Table, Purchase.__table__)
    # Core statement: an executemany UPDATE with a WHERE, one row per refunded order.
    await session.execute(
        update(purchases)
        .where(purchases.c.order_id == bindparam("order"))
        .values(refunded=purchases.c.refunded + bindparam("refund_total")),
        [
            {"order": order_id, "refund_total": total}
            for order_id, total in sorted(per_order.items())
        ],
    )
