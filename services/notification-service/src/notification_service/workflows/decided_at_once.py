"""Messages decided as they are queued: a new customer's due messages that cannot be sent.

In an order stream most customers are new, and most of their first-order messages are due at
once and held back at once (no address, no consent, hold-out group). Queued as ``scheduled``,
each such row was claimed by the next delivery round, decided there and written again (its
second version, an entry in every index). Here the batch that queues them decides them with
the delivery round's own pure function, :func:`~notification_service.domain.delivery_decision.
decide_customer`, and the rows are inserted already suppressed or failed, with their
``notification.suppressed`` / ``notification.failed`` events staged in the same transaction.

Only customers first seen in this batch qualify: nothing of theirs is queued, sent or being
sent yet (a contact row comes before any message, an erasure or merge takes the messages
with the contact), so their frequency cap counts no earlier sends and arbitration sees every
message that competes with these. Only final verdicts are applied: a message to send or
defer stays a queue row for the delivery round, which renders, sends and retries it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import CloudEvent
from notification_service.domain.delivery_decision import (
    DecisionSettings,
    Verdict,
    decide_customer,
)
from notification_service.domain.delivery_policy import ContactState
from notification_service.domain.playbooks import PlaybookRule
from notification_service.workflows import delivery_inputs
from notification_service.workflows.due_rows import DueRow
from notification_service.workflows.outcomes import fail, suppress

# The columns a queued row does not carry yet, as a claimed row has them.
_UNDECIDED: dict[str, Any] = {
    "channel": None,
    "decided_at": None,
    "sender": None,
    "handed_at": None,
    "finished_at": None,
    "recipient": None,
    "subject": None,
    "provider_id": None,
    "reason": None,
    "detail": None,
    "assignment": None,
}
# What a final decision at queue time sets on a row.
DECIDED_COLUMNS = ("status", "reason", "detail", "finished_at", "assignment")


async def decide_newcomers(
    session: AsyncSession,
    rows: Sequence[dict[str, Any]],
    newcomers: Collection[str],
    rules: Sequence[PlaybookRule],
    settings: DecisionSettings,
    now: datetime,
) -> dict[str, CloudEvent]:
    """Decide the rows due at ``now`` of ``newcomers`` (contacts first stored by this batch);
    the suppressed and failed ones get their final columns set in ``rows``. The events to
    publish, by notification id (for the rows that are really inserted)."""
    due: dict[str, list[DueRow]] = defaultdict(list)
    for row in rows:
        if row["customer_id"] in newcomers and row["due_at"] <= now:
            due[row["customer_id"]].append(DueRow(**{**_UNDECIDED, **row}))
    if not due:
        return {}
    states = await delivery_inputs.customers(session, sorted(due))
    by_id = {rule.rule_id: rule for rule in rules}
    decided = {
        record.notification_id: (record, event)
        for customer_id, records in due.items()
        for record, event in _decide(records, by_id, states[customer_id], settings, now)
    }
    for row in rows:
        found = decided.get(row["notification_id"])
        if found is not None:
            row.update({name: _plain(getattr(found[0], name)) for name in DECIDED_COLUMNS})
    return {notification_id: event for notification_id, (_, event) in decided.items()}


def _decide(
    records: list[DueRow],
    rules: Mapping[str, PlaybookRule],
    state: ContactState | None,
    settings: DecisionSettings,
    now: datetime,
) -> list[tuple[DueRow, CloudEvent]]:
    """The records decided for good, each with the event it publishes."""
    by_id = {record.notification_id: record for record in records}
    final: list[tuple[DueRow, CloudEvent]] = []
    # No earlier marketing sends: nothing was ever queued for a customer first seen now.
    messages = [delivery_inputs.due_message(record) for record in records]
    for decision in decide_customer(messages, rules, state, [], settings, now):
        record = by_id[decision.notification_id]
        if decision.verdict is Verdict.SUPPRESS and decision.suppression is not None:
            record.assignment = decision.assignment
            final.append((record, suppress(record, decision.suppression, now)))
        elif decision.verdict is Verdict.FAIL:
            record.assignment = decision.assignment
            final.append((record, fail(record, now, decision.detail or "cannot be delivered")))
        # To send or defer: the delivery round's to render, send and retry.
    return final


def _plain(value: Any) -> Any:
    # Statuses, reasons and groups are str enums: the driver takes their text.
    return str(value) if isinstance(value, str) else value
