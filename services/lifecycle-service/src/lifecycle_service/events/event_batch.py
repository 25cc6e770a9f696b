"""A consumed batch of order, score and customer events applied to the customers it names.

One transaction per batch: the customers named are loaded (locked on PostgreSQL), each event
is applied in stream order through the domain, and the result is stored in bulk. Every moment
comes from the events themselves, so a replay moves customers as they moved at the time.

Event times are taken in UTC before anything is dated or counted by day or month.
Refunds do not move stages (the customer still bought); a cancelled order is taken out of the
customer's purchases and the stage re-evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    ActivityRecorded,
    CloudEvent,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    FeedbackKind,
    FeedbackRecorded,
    OrderCancelled,
    OrderPlaced,
    ScoreUpdated,
    Survey,
    Topic,
)
from crm_shared import as_utc, objecting_customers, record_profiling_decisions
from lifecycle_service.db.models import PROFILING_DECISIONS, ChurnWarningRow, StageTransition
from lifecycle_service.domain.churn_warnings import (
    close_on_purchase,
    feedback_signals,
    warnings_after_merge,
)
from lifecycle_service.domain.counts import month_index
from lifecycle_service.domain.purchases import active_months, with_purchases
from lifecycle_service.domain.stages import on_correction, on_order, on_scores
from lifecycle_service.workflows.changes import CustomerChanges
from lifecycle_service.workflows.customer_rows import OPEN_STATUSES, load_customers
from lifecycle_service.workflows.feedback import BatchFeedback, forget_feedback, move_feedback
from lifecycle_service.workflows.orders import BatchOrders, OrderFacts
from lifecycle_service.workflows.rules_store import current_rules

LIFECYCLE_TOPICS = (Topic.ORDERS, Topic.SCORES, Topic.CUSTOMERS, Topic.ACTIVITIES)


async def apply_events(session: AsyncSession, events: Sequence[CloudEvent]) -> None:
    """Apply ``events`` (in stream order) to lifecycle state in one transaction."""
    # Of crm.activities only feedback matters here; page views and the like would only load
    # (and on PostgreSQL lock) their customers for nothing.
    events = [event for event in events if not isinstance(event.data, ActivityRecorded)]
    if not events:
        return
    involved = {event.subject for event in events}
    involved |= {e.data.merged_customer_id for e in events if isinstance(e.data, CustomerMerged)}
    order_ids = {
        e.data.order_id for e in events if isinstance(e.data, OrderPlaced | OrderCancelled)
    }
    rules = (await current_rules(session)).rules
    changes = CustomerChanges(rules, await load_customers(session, involved))
    # Objections first: whatever the batch holds, an objecting customer is not warned.
    profiling = await record_profiling_decisions(session, PROFILING_DECISIONS, events)
    changes.objecting = await objecting_customers(session, PROFILING_DECISIONS, involved)
    for change in profiling:
        if change.objected:
            changes.object_to_profiling(change.customer_id, as_utc(change.changed_at))
    orders = await BatchOrders.load(session, order_ids)
    window = timedelta(days=rules.warning_complaint_window_days)
    feedback = await BatchFeedback.load(session, events, window)
    batch = _Batch(session, changes, orders, feedback)
    for event in events:
        await batch.apply(event)
    await orders.store(session)
    await feedback.store(session)
    await changes.store(session)


class _Batch:
    def __init__(
        self,
        session: AsyncSession,
        changes: CustomerChanges,
        orders: BatchOrders,
        feedback: BatchFeedback,
    ):
        self.session = session
        self.changes = changes
        self.orders = orders
        self.feedback = feedback

    async def apply(self, event: CloudEvent) -> None:
        data = event.data
        if isinstance(data, OrderPlaced):
            self.order_placed(event.id, data)
        elif isinstance(data, OrderCancelled):
            await self.order_cancelled(event.id, data)
        elif isinstance(data, ScoreUpdated):
            self.scores(event.id, data)
        elif isinstance(data, CustomerCreated):
            self.changes.ensure(data.customer.customer_id, as_utc(event.time), event.id)
        elif isinstance(data, CustomerMerged):
            await self.merged(event.id, data)
        elif isinstance(data, CustomerErased):
            await self.erased(data)
        elif isinstance(data, FeedbackRecorded):
            self.feedback_recorded(data)

    def feedback_recorded(self, data: FeedbackRecorded) -> None:
        """Keep the report; a complaint surge or a valuable detractor may warn."""
        customer_id, at = data.customer_id, as_utc(data.occurred_at)
        tracked = self.changes.get(customer_id)
        if not self.feedback.record(data, tracked.state if tracked else None):
            return  # the same report again
        if tracked is None:
            return  # not a buyer we track: nothing to warn about
        rules = self.changes.rules
        complaints = 0
        if data.kind is FeedbackKind.COMPLAINT:
            since = at - timedelta(days=rules.warning_complaint_window_days)
            complaints = self.feedback.complaints_within(customer_id, since, at)
        signals = feedback_signals(
            tracked.state,
            rules,
            complaints_in_window=complaints,
            nps_answer=data.score if data.survey is Survey.NPS else None,
        )
        if signals:
            self.changes.review_warning(customer_id, at, feedback=signals)

    def order_placed(self, event_id: str, data: OrderPlaced) -> None:
        known = self.orders.get(data.order_id)
        amount = float(data.total.amount)
        if known is not None:
            if known.placed_at is None:  # its cancellation came first: remember, never count
                self.orders.put(replace(known, placed_at=as_utc(data.placed_at), amount=amount))
            return
        placed_at = as_utc(data.placed_at)
        self.orders.put(OrderFacts(data.order_id, data.customer_id, placed_at, amount, False))
        changes, at, customer_id = self.changes, as_utc(data.placed_at), data.customer_id
        tracked = changes.get(customer_id)
        first_seen = tracked is None
        if tracked is None:
            tracked = changes.start_with_order(customer_id, at)
        warning = tracked.warning
        if warning is not None and warning.is_open and at >= warning.raised_at:
            saved = close_on_purchase(warning, at)
            if saved is not None:
                changes.set_warning(customer_id, saved)
        moved = on_order(tracked.state, at, amount, event_id, changes.rules)
        changes.apply(customer_id, moved, at, first_seen=first_seen)
        tracked.active_months.add(month_index(at))
        changes.review_warning(customer_id, at)

    async def order_cancelled(self, event_id: str, data: OrderCancelled) -> None:
        known = self.orders.get(data.order_id)
        if known is None:
            self.orders.put(OrderFacts(data.order_id, data.customer_id, None, 0.0, True))
            return
        if known.cancelled:
            return
        self.orders.put(replace(known, cancelled=True))
        await self.correct(known.customer_id, event_id, as_utc(data.cancelled_at))

    def scores(self, event_id: str, data: ScoreUpdated) -> None:
        changes, at = self.changes, as_utc(data.as_of)
        if data.customer_id in changes.objecting:
            return  # published before the objection reached scoring: not used
        tracked = changes.ensure(data.customer_id, at, event_id)
        clv = data.predicted_clv_12m
        if clv is not None:
            tracked.clv_currency = clv.currency
        moved = on_scores(
            tracked.state,
            as_of=at,
            churn_risk=data.churn_risk,
            value_tier=data.value_tier,
            grade=data.grade,
            expected_interpurchase_days=data.expected_interpurchase_days,
            predicted_clv_12m=float(clv.amount) if clv is not None else None,
            cause_event_id=event_id,
            rules=changes.rules,
        )
        changes.apply(data.customer_id, moved, at)
        changes.review_warning(data.customer_id, at)

    async def merged(self, event_id: str, data: CustomerMerged) -> None:
        survivor, merged, at = data.customer_id, data.merged_customer_id, as_utc(data.merged_at)
        gone = self.changes.remove(merged, at)
        await self.orders.move_customer(self.session, merged, survivor)
        tracked = self.changes.ensure(survivor, at, event_id)
        after = warnings_after_merge(tracked.warning, gone.warning if gone else None, survivor)
        if after.drops_merged_open:
            # The decision stored: the merged customer's open warning rows go.
            await self.session.execute(
                delete(ChurnWarningRow).where(
                    ChurnWarningRow.customer_id == merged,
                    ChurnWarningRow.status.in_(OPEN_STATUSES),
                )
            )
        await self.session.execute(
            update(ChurnWarningRow)
            .where(ChurnWarningRow.customer_id == merged)
            .values(customer_id=survivor)
        )
        await self.session.execute(
            update(StageTransition)
            .where(StageTransition.customer_id == merged)
            .values(customer_id=survivor)
        )
        self.changes.rekey(merged, survivor)
        await move_feedback(self.session, merged, survivor)
        self.feedback.move_customer(merged, survivor)
        tracked.warning = after.carried
        await self.correct(survivor, event_id, at)

    async def erased(self, data: CustomerErased) -> None:
        customer_id = data.customer_id
        self.changes.remove(customer_id, as_utc(data.erased_at))
        self.changes.forget(customer_id)
        await self.orders.forget_customer(self.session, customer_id)
        await forget_feedback(self.session, customer_id)
        self.feedback.forget_customer(customer_id)
        for model in (StageTransition, ChurnWarningRow):
            await self.session.execute(delete(model).where(model.customer_id == customer_id))

    async def correct(self, customer_id: str, event_id: str, at: datetime) -> None:
        """Rebuild the customer's purchases from their orders and re-evaluate the stage."""
        tracked = self.changes.get(customer_id)
        if tracked is None:
            return
        purchases = await self.orders.purchases_of(self.session, customer_id)
        corrected = with_purchases(tracked.state, purchases)
        tracked.active_months = active_months(purchases)
        moved = on_correction(corrected, at, event_id, self.changes.rules)
        self.changes.apply(customer_id, moved, at)
        self.changes.review_warning(customer_id, at)
