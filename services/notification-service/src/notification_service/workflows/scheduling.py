"""From a triggering event to scheduled notifications: match the playbook, queue once.

Each match becomes a row in the delivery queue keyed by (rule, customer, triggering event);
a redelivered or replayed event finds the row already there and queues nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Grade, ValueTier
from crm_shared import as_utc, new_id, upsert_into
from notification_service.db.models import NOTIFICATIONS
from notification_service.domain.notification_status import NotificationStatus
from notification_service.domain.playbooks import (
    PlaybookRule,
    Trigger,
    dedup_key,
    due_at,
    matching_rules,
)
from notification_service.workflows import playbook_store, stream_sql

SCHEDULED = NotificationStatus.SCHEDULED


class ContactFacts(Protocol):
    """What :func:`with_contact_facts` reads of a contact: a stored row or a stream's copy."""

    @property
    def value_tier(self) -> str | None: ...
    @property
    def grade(self) -> str | None: ...
    @property
    def churn_risk(self) -> float | None: ...
    @property
    def rfm_segment(self) -> str | None: ...
    @property
    def cluster(self) -> str | None: ...


def with_contact_facts(trigger: Trigger, contact: ContactFacts | None) -> Trigger:
    """Fill the facts the event does not carry (tier, grade, risk, segment) from the replica."""
    if contact is None:
        return trigger
    value_tier = trigger.value_tier or (
        ValueTier(contact.value_tier) if contact.value_tier else None
    )
    grade = trigger.grade or (Grade(contact.grade) if contact.grade else None)
    churn_risk = trigger.churn_risk if trigger.churn_risk is not None else contact.churn_risk
    rfm_segment = trigger.rfm_segment or contact.rfm_segment
    cluster = trigger.cluster or contact.cluster
    if (value_tier, grade, churn_risk, rfm_segment, cluster) == (
        trigger.value_tier,
        trigger.grade,
        trigger.churn_risk,
        trigger.rfm_segment,
        trigger.cluster,
    ):
        return trigger  # nothing to fill (a new customer's first order): no copy to validate
    return replace(
        trigger,
        value_tier=value_tier,
        grade=grade,
        churn_risk=churn_risk,
        rfm_segment=rfm_segment,
        cluster=cluster,
    )


async def schedule_notifications(
    session: AsyncSession, trigger: Trigger, facts: dict[str, Any], now: datetime
) -> int:
    """Queue a notification for every rule ``trigger`` matches; how many rules matched."""
    rules = await playbook_store.rules_for_transaction(session)
    rows = notification_rows(rules, trigger, facts, now)
    await queue_notifications(session, rows)
    return len(rows)


def notification_rows(
    rules: Sequence[PlaybookRule], trigger: Trigger, facts: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    """The queue rows for the rules ``trigger`` matches (none when it matches none)."""
    trigger_at = as_utc(trigger.occurred_at)
    rows = []
    for rule in matching_rules(rules, trigger):
        due = as_utc(due_at(rule, trigger))
        rows.append(
            {
                "notification_id": new_id(),
                "dedup_key": dedup_key(rule, trigger.customer_id, trigger.occurrence_id),
                "customer_id": trigger.customer_id,
                "rule_id": rule.rule_id,
                "template_id": rule.template_id,
                "channels": [channel.value for channel in rule.channels],
                "category": rule.category.value,
                "priority": rule.priority,
                "trigger_event_id": trigger.event_id,
                "trigger_type": trigger.event_type,
                "trigger_at": trigger_at,
                "trigger_facts": facts,
                "status": SCHEDULED.value,
                "intended_at": due,
                "due_at": due,
                "attempts": 0,
                "created_at": now,
                "reason": None,
                "detail": None,
                "finished_at": None,
                "assignment": None,
            }
        )
    return rows


async def queue_notifications(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert queue rows in one statement; a row whose dedup key exists is skipped (replays).
    The ids of the rows inserted."""
    if not rows:
        return set()
    if stream_sql.is_postgres(session):
        return await stream_sql.queue(session, rows)
    # The table, not the mapped class: a plain INSERT skips the ORM's bulk-insert handling
    # of every row, and there are a few hundred per batch.
    statement = upsert_into(session, NOTIFICATIONS).on_conflict_do_nothing(
        index_elements=[NOTIFICATIONS.c.dedup_key]
    )
    inserted = await session.execute(
        statement.returning(NOTIFICATIONS.c.notification_id), list(rows)
    )
    return set(inserted.scalars())
