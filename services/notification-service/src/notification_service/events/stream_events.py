"""A run of order, score, stage, warning, activity and feedback events applied in bulk.

Per order the stream carries three or four such events. Applied one at a time each cost a few
round trips; here a run of them costs a fixed handful of statements: the contacts, known orders
and buyers named by the run are read once, each event is applied in stream order to those rows
in memory (so a trigger sees the scores and stage that came before it), and the new orders,
contact changes and queued notifications are written once at the end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    ActivityRecorded,
    ChurnWarning,
    CloudEvent,
    FeedbackRecorded,
    OrderPlaced,
    ScoreUpdated,
    StageChanged,
)
from crm_shared import as_utc
from notification_service.domain.delivery_decision import DecisionSettings
from notification_service.domain.playbooks import PlaybookRule, Trigger
from notification_service.workflows import contacts, decided_at_once, playbook_store
from notification_service.workflows.outcomes import stage_outcomes
from notification_service.workflows.scheduling import (
    notification_rows,
    queue_notifications,
    with_contact_facts,
)

STREAM_EVENT_TYPES = (
    OrderPlaced,
    ScoreUpdated,
    StageChanged,
    ChurnWarning,
    ActivityRecorded,
    FeedbackRecorded,
)


def is_stream_event(event: CloudEvent) -> bool:
    """Whether ``event`` is one :func:`apply_stream_events` applies (the rest go one by one)."""
    return isinstance(event.data, STREAM_EVENT_TYPES)


async def apply_stream_events(
    session: AsyncSession,
    events: Sequence[CloudEvent],
    now: datetime,
    decisions: DecisionSettings | None = None,
) -> None:
    """Apply a run of stream events in order; queue what the playbook says for the triggers.

    With ``decisions`` (the delivery loop's settings; None where no loop delivers), the due
    messages of customers first seen in the run that cannot be sent are stored decided
    (:mod:`~notification_service.workflows.decided_at_once`).
    """
    run = await _Run.load(session, events)
    rules = await playbook_store.rules_for_transaction(session)
    # Each trigger is matched against the rules of its event type only.
    by_type: dict[str, list[PlaybookRule]] = defaultdict(list)
    for rule in rules:
        by_type[rule.event_type].append(rule)
    rows: list[dict[str, Any]] = []
    for event in events:
        triggered = run.apply(event)
        if triggered is not None:
            trigger, facts = triggered
            contact = run.contacts.get(trigger.customer_id)
            candidates = by_type.get(trigger.event_type, [])
            rows += notification_rows(candidates, with_contact_facts(trigger, contact), facts, now)
    await contacts.insert_stream_contacts(session, run.new_contacts)
    await contacts.update_stream_contacts(session, run.changed_contacts())
    await contacts.insert_orders(session, run.new_orders)
    # Contacts read through the session between runs (a new customer's facts) would be stale
    # now that this run changed rows with plain statements: forget them.
    session.expunge_all()
    outcomes = (
        await decided_at_once.decide_newcomers(session, rows, run.is_new, rules, decisions, now)
        if decisions is not None
        else {}
    )
    inserted = await queue_notifications(session, rows)
    # A row already stored (the same trigger seen before) was decided then: publish nothing.
    await stage_outcomes(session, [e for key, e in outcomes.items() if key in inserted])


class _Run:
    """The rows a run of events touches, and the run applied to them in memory."""

    def __init__(
        self,
        stored: dict[str, contacts.StreamContact],
        known_orders: set[str],
        buyers: set[str],
    ) -> None:
        self.contacts = stored
        # The stored values, so that only contacts whose values changed are written back (a
        # score already kept, a stage announced twice: no row version, no WAL).
        self.stored = {customer_id: contacts.stream_values(c) for customer_id, c in stored.items()}
        self.known_orders = known_orders
        self.buyers = buyers
        self.new_orders: list[dict[str, Any]] = []
        # Each new contact with the moment of the event that made it.
        self.new_contacts: list[tuple[contacts.StreamContact, datetime]] = []
        # Stored contacts the run touched (ids, in the order first touched).
        self.changed: dict[str, None] = {}
        self.is_new: set[str] = set()

    def changed_contacts(self) -> list[contacts.StreamContact]:
        """The stored contacts the run touched whose values differ from the stored ones."""
        return [
            contact
            for contact in (self.contacts[customer_id] for customer_id in self.changed)
            if contacts.stream_values(contact) != self.stored[contact.customer_id]
        ]

    @classmethod
    async def load(cls, session: AsyncSession, events: Sequence[CloudEvent]) -> _Run:
        customer_ids = {event.subject for event in events}
        orders = [event.data for event in events if isinstance(event.data, OrderPlaced)]
        stored = await contacts.load_stream_contacts(session, customer_ids)
        known_orders: set[str] = set()
        buyers: set[str] = set()
        if orders:
            known_orders, buyers = await contacts.known_orders_and_buyers(
                session,
                {order.order_id for order in orders},
                {order.customer_id for order in orders},
            )
        return cls(stored, known_orders, buyers)

    def apply(self, event: CloudEvent) -> tuple[Trigger, dict[str, Any]] | None:
        """Apply one event to the rows; the trigger and template facts it makes, if any."""
        data = event.data
        if isinstance(data, ScoreUpdated):
            contact = self._contact(data.customer_id, as_utc(data.as_of))
            if contacts.apply_scores(contact, data):
                self._changed(contact)
            return None
        if isinstance(data, StageChanged):
            contact = self._contact(data.customer_id, as_utc(data.changed_at))
            contact.stage = data.stage.value
            contact.previous_stage = data.previous_stage.value if data.previous_stage else None
            self._changed(contact)
            stage = {"stage": data.stage.value, "previous_stage": contact.previous_stage}
            return Trigger.from_stage_changed(event.id, data), {"stage": stage}
        if isinstance(data, ChurnWarning):
            warning = {
                "warning_id": data.warning_id,
                "status": data.status,
                "reasons": list(data.reasons),
                "recommended_action": data.recommended_action,
            }
            return Trigger.from_churn_warning(event.id, data), {"warning": warning}
        if isinstance(data, OrderPlaced):
            return self._order(event.id, data)
        if isinstance(data, ActivityRecorded):
            activity = {
                "activity_id": data.activity_id,
                "activity_type": data.activity_type,
                "properties": dict(data.properties),
            }
            return Trigger.from_activity(event.id, data), {"activity": activity}
        if isinstance(data, FeedbackRecorded):
            feedback = data.model_dump(mode="json", exclude={"customer_id"})
            return Trigger.from_feedback(event.id, data), {"feedback": feedback}
        return None

    def _order(self, event_id: str, order: OrderPlaced) -> tuple[Trigger, dict[str, Any]] | None:
        # A redelivered order (same order id, new event id) is not a new trigger.
        if order.order_id in self.known_orders:
            return None
        self.known_orders.add(order.order_id)
        first = order.customer_id not in self.buyers
        self.buyers.add(order.customer_id)
        placed = as_utc(order.placed_at)
        self.new_orders.append(
            {
                "order_id": order.order_id,
                "customer_id": order.customer_id,
                "placed_at": placed,
                "total": order.total.amount,
            }
        )
        contact = self._contact(order.customer_id, placed)
        contacts.count_order(contact, placed)
        self._changed(contact)
        facts = {
            "order": {"order_id": order.order_id, "total": order.total.model_dump(mode="json")}
        }
        return Trigger.from_order_placed(event_id, order, is_first_order=first), facts

    def _contact(self, customer_id: str, at: datetime) -> contacts.StreamContact:
        contact = self.contacts.get(customer_id)
        if contact is None:
            # An event about a customer profile-service has not told us of (yet).
            contact = contacts.empty_contact(customer_id)
            self.contacts[customer_id] = contact
            self.new_contacts.append((contact, at))
            self.is_new.add(customer_id)
        return contact

    def _changed(self, contact: contacts.StreamContact) -> None:
        # A new contact is inserted with everything the run did to it.
        if contact.customer_id not in self.is_new:
            self.changed[contact.customer_id] = None
