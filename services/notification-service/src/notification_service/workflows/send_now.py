"""Send-now: one message to one customer outside the playbook, to try a template for real.

The message is queued like any other, due at once, without a rule (``rule_id`` null): the
delivery loop still applies consent, quiet hours and, for marketing, the frequency cap, so a
test send cannot do what the playbook may not. An ``Idempotency-Key`` makes a retried request
find the message the first one queued instead of sending a second.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Category, NotificationChannel
from crm_shared import IDEMPOTENCY_HEADER, new_id, upsert_into
from crm_shared.errors import NotFound, UnprocessableContent
from crm_shared.rule_documents import InvalidRuleDocument
from notification_service.db.models import Contact, Notification
from notification_service.domain.playbooks import CUSTOMER_CREATED, PlaybookRule
from notification_service.workflows import playbook_store
from notification_service.workflows.playbook_editing import rule_problems
from notification_service.workflows.scheduling import SCHEDULED

SEND_NOW = "send-now"


@dataclass(frozen=True)
class SendNow:
    """Who asked to send which template to whom, on which channels (tried in order)."""

    customer_id: str
    template_id: str
    channels: Sequence[NotificationChannel]
    category: Category | None  # None: the template's; another one than the template's: 422
    requested_by: str
    idempotency_key: str | None = None


async def send_now(session: AsyncSession, request: SendNow, now: datetime) -> Notification:
    """Queue the message, due now; the one queued before when the idempotency key is reused.

    404 when the customer is unknown here; :class:`InvalidRuleDocument` naming ``template_id``
    or ``channels.<i>`` when the template has no text for a channel (or the channels are not
    allowed for the category); 422 when the key was used for a different request.
    """
    if await session.get(Contact, request.customer_id) is None:
        raise NotFound(f"notification-service knows no customer {request.customer_id}.")
    texts = await playbook_store.templates_by_id(session, request.template_id)
    # The category is the template's: a marketing text needs consent whatever the caller says.
    category = texts[0].category if texts else request.category or Category.MARKETING
    # The checks a rule sending this would pass: the same ones, so the same messages.
    one_off = PlaybookRule(
        rule_id=SEND_NOW,
        name="send now",
        event_type=CUSTOMER_CREATED,
        template_id=request.template_id,
        channels=tuple(request.channels),
        category=request.category or category,
    )
    problems = await rule_problems(session, one_off)
    if problems:
        raise InvalidRuleDocument(problems)
    notification_id = new_id()
    key = _dedup_key(request.requested_by, request.idempotency_key or notification_id)
    statement = upsert_into(session, Notification).values(
        notification_id=notification_id,
        dedup_key=key,
        customer_id=request.customer_id,
        rule_id=None,
        template_id=request.template_id,
        channels=[channel.value for channel in request.channels],
        category=category.value,
        priority=0,
        trigger_facts={"send_now": {"requested_by": request.requested_by}},
        status=SCHEDULED,
        intended_at=now,
        due_at=now,
        attempts=0,
        created_at=now,
    )
    await session.execute(statement.on_conflict_do_nothing(index_elements=[Notification.dedup_key]))
    queued = await session.scalar(select(Notification).where(Notification.dedup_key == key))
    if queued is None:  # erased between the insert and the read: nothing to show
        raise NotFound(f"notification-service knows no customer {request.customer_id}.")
    if not _same_request(queued, request, category):
        raise UnprocessableContent(
            "This Idempotency-Key was already used for a different send.",
            field=IDEMPOTENCY_HEADER,
        )
    return queued


def _dedup_key(requested_by: str, unique: str) -> str:
    # Hashed: a client's key may be long or hold any character; the column holds 400.
    digest = hashlib.sha256(f"{requested_by}\n{unique}".encode()).hexdigest()
    return f"{SEND_NOW}/{digest}"


def _same_request(queued: Notification, request: SendNow, category: Category) -> bool:
    return (
        queued.customer_id == request.customer_id
        and queued.template_id == request.template_id
        and list(queued.channels) == [channel.value for channel in request.channels]
        and queued.category == category.value
    )
