"""The delivery loop: due notifications decided, rendered, handed to their channel, recorded.

One round, in three steps:

1. *Decide* (one transaction): claim due notifications (skipping rows another replica holds),
   and for each customer apply the policy in order (the pure
   :func:`~notification_service.domain.delivery_decision.decide_customer`): rule still
   enabled, still applies, a channel with consent and an address, quiet hours, then the
   frequency cap and priority arbitration. Deferred ones get a later due time; suppressed
   ones are closed with their reason; in-app messages are delivered right there (the inbox
   is this database). Those to
   send are marked ``sending`` by this process and committed *before* anything leaves.
2. *Send* outside any transaction, in chunks of ``parallel_sends``: each chunk is marked as
   handed to its channel (committed) right before it goes, in the transaction that records
   the chunk before.
3. *Record* the outcomes: sent, retried later with backoff and jitter, or failed; every
   final outcome is published through the outbox.

A process killed in between leaves ``sending`` rows behind; each round first recovers those
of senders that are gone (see :mod:`notification_service.workflows.interrupted_sends`):
SMS and webhooks are sent again under the same idempotency key, an email already handed to
SMTP is reported failed, never sent twice. Handing over a chunk at a time bounds the emails
a crash leaves unknown to one chunk.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import (
    Category,
    CloudEvent,
    NotificationChannel,
)
from crm_shared import ServiceRuntime, add_many_to_outbox
from notification_service.channels.base import (
    Channel as DeliveryChannel,
)
from notification_service.channels.base import (
    DeliveryError,
    OutgoingMessage,
    TransientDeliveryError,
)
from notification_service.db.models import (
    PLUMBING,
    Contact,
    Notification,
)
from notification_service.domain.delivery_decision import (
    DecisionSettings,
    DeliveryDecision,
    Verdict,
    decide_customer,
)
from notification_service.domain.delivery_policy import (
    INTERNAL_CHANNELS,
    ChannelChoice,
    PolicySettings,
    next_attempt_or_fail,
    retry_delay,
)
from notification_service.domain.templates import InvalidTemplate, Template
from notification_service.workflows import (
    delivery_inputs,
    due_rows,
    interrupted_sends,
    playbook_store,
)
from notification_service.workflows.due_rows import DueRow
from notification_service.workflows.message_context import message_context, unsubscribe_url
from notification_service.workflows.outcomes import (
    SCHEDULED,
    SENDING,
    fail,
    mark_sent,
    stage_outcomes,
    suppress,
)
from notification_service.workflows.rendering import TemplateRenderer


@dataclass(frozen=True)
class DeliveryConfig:
    """What a delivery round needs besides the database."""

    policy: PolicySettings
    channels: dict[NotificationChannel, DeliveryChannel]
    public_base_url: str
    unsubscribe_secret: bytes
    # This process's name on the rows it sends (see interrupted_sends.hold_sender).
    sender: str
    renderer: TemplateRenderer
    batch_size: int = 200
    # Sends in flight at once, and so the most emails a crash can leave unknown.
    parallel_sends: int = 20
    # A ``sending`` row older than this was interrupted whoever its sender (a backstop: a
    # live sender records a chunk within the send timeout).
    sending_lease: timedelta = timedelta(minutes=10)
    # Triggers older than this (a replay of old events) send nothing; None: no limit.
    max_trigger_age: timedelta | None = timedelta(days=7)


@dataclass(frozen=True)
class _Send:
    message: OutgoingMessage
    attempt: int

    @property
    def notification_id(self) -> str:
        return self.message.notification_id


@dataclass(frozen=True)
class _Outcome:
    notification_id: str
    provider_id: str | None = None
    error: DeliveryError | None = None


async def deliver_due(
    runtime: ServiceRuntime,
    config: DeliveryConfig,
    clock: Callable[[], datetime],
    jitter: Callable[[], float] = random.random,
) -> int:
    """One round: decide, send and record every notification due now; how many were claimed."""
    now = clock()
    await interrupted_sends.recover(
        runtime,
        sender=config.sender,
        stale_before=now - config.sending_lease,
        now=now,
        max_attempts=config.policy.max_attempts,
    )
    async with runtime.sessions() as session, session.begin():
        claimed = await due_rows.claim_due(session, now, config.batch_size)
        sends = await _decide(session, config, claimed, now) if claimed else []
    runtime.wake_relay()
    outcomes: list[_Outcome] = []
    for start in range(0, len(sends), config.parallel_sends):
        chunk = sends[start : start + config.parallel_sends]
        async with runtime.sessions() as session, session.begin():
            await _record(session, config, outcomes, clock(), jitter)
            ours = await _hand_over(session, config.sender, chunk, clock())
        runtime.wake_relay()
        outcomes = list(
            await asyncio.gather(*(_send(config, i) for i in chunk if i.notification_id in ours))
        )
    if outcomes:
        async with runtime.sessions() as session, session.begin():
            await _record(session, config, outcomes, clock(), jitter)
        runtime.wake_relay()
    return len(claimed)


async def _send(config: DeliveryConfig, item: _Send) -> _Outcome:
    channel = config.channels[item.message.channel]
    try:
        return _Outcome(item.notification_id, await channel.send(item.message))
    except DeliveryError as error:
        return _Outcome(item.notification_id, error=error)


async def _hand_over(
    session: AsyncSession, sender: str, chunk: Sequence[_Send], now: datetime
) -> set[str]:
    """Mark ``chunk`` as handed to its channels; the ids still this sender's to send (a row
    erased meanwhile, or recovered by a replica that took this process for dead, is not)."""
    rows = await session.scalars(
        select(Notification).where(
            Notification.notification_id.in_([item.notification_id for item in chunk]),
            Notification.status == SENDING,
            Notification.sender == sender,
        )
    )
    ours = set()
    for row in rows:
        row.handed_at = now
        ours.add(row.notification_id)
    return ours


async def deliver_until_idle(
    runtime: ServiceRuntime,
    config: DeliveryConfig,
    clock: Callable[[], datetime],
    jitter: Callable[[], float] = random.random,
) -> None:
    """Delivery rounds back to back while they find full batches, so a backlog drains at the
    speed of sending rather than one batch per loop interval."""
    while await deliver_due(runtime, config, clock, jitter) >= config.batch_size:
        pass


async def _decide(
    session: AsyncSession, config: DeliveryConfig, claimed: list[DueRow], now: datetime
) -> list[_Send]:
    customers = sorted({n.customer_id for n in claimed})
    states = await delivery_inputs.customers(session, customers)
    recent = await delivery_inputs.recent_marketing_sends(session, customers, now, config.policy)
    rules = {rule.rule_id: rule for rule in await playbook_store.all_rules(session)}
    settings = DecisionSettings(config.policy, frozenset(config.channels), config.max_trigger_age)
    by_customer: dict[str, list[DueRow]] = defaultdict(list)
    for notification in claimed:
        by_customer[notification.customer_id].append(notification)
    decided: list[tuple[DueRow, DeliveryDecision]] = []
    for customer_id, notifications in by_customer.items():
        rows = {n.notification_id: n for n in notifications}
        decisions = decide_customer(
            [delivery_inputs.due_message(n) for n in notifications],
            rules,
            states[customer_id],
            recent.get(customer_id, []),
            settings,
            now,
        )
        decided += [(rows[decision.notification_id], decision) for decision in decisions]
    # Whole contacts (scores, names, attributes) only for the messages rendered now.
    contacts = await delivery_inputs.contacts(
        session, {n.customer_id for n, decision in decided if decision.verdict is Verdict.SEND}
    )
    events: list[CloudEvent] = []
    sends: list[_Send] = []
    rendering = _Rendering(config)
    for notification, decision in decided:
        if decision.assignment is not None:
            notification.assignment = decision.assignment
        if decision.verdict is Verdict.SUPPRESS and decision.suppression is not None:
            events.append(suppress(notification, decision.suppression, now))
        elif decision.verdict is Verdict.DEFER and decision.at is not None:
            notification.due_at = decision.at
            notification.detail = decision.detail
        elif decision.verdict is Verdict.FAIL:
            events.append(fail(notification, now, decision.detail or "cannot be delivered"))
        elif decision.choice is not None:
            contact = contacts.get(notification.customer_id)
            sent = await rendering.prepare(session, notification, decision.choice, contact, now)
            if isinstance(sent, _Send):
                sends.append(sent)
            else:
                events.append(sent)
    await due_rows.write_back(session, claimed)
    await due_rows.insert_inbox_messages(session, rendering.inbox)
    # A round publishes an outcome for most of the rows it claims.
    await stage_outcomes(session, events)
    return sends


class _Rendering:
    """A round's renders: each template read once, in-app messages inserted together."""

    def __init__(self, config: DeliveryConfig) -> None:
        self.config = config
        self.templates: dict[tuple[str, NotificationChannel], Template | None] = {}
        self.inbox: list[dict[str, Any]] = []

    async def prepare(
        self,
        session: AsyncSession,
        notification: DueRow,
        choice: ChannelChoice,
        contact: Contact | None,
        now: datetime,
    ) -> _Send | CloudEvent:
        """Render for the chosen channel; deliver in-app at once, else mark it ``sending``."""
        config, channel = self.config, choice.channel
        key = (notification.template_id, channel)
        if key not in self.templates:
            self.templates[key] = await playbook_store.template_for(session, *key)
        template = self.templates[key]
        if template is None or contact is None:
            return fail(notification, now, f"no template {key[0]!r} for {channel}")
        category = Category(notification.category)
        link = (
            None
            if channel in INTERNAL_CHANNELS
            else unsubscribe_url(
                config.public_base_url,
                config.unsubscribe_secret,
                contact.customer_id,
                channel,
                category,
            )
        )
        try:
            context = message_context(contact, notification, link)
            content = await config.renderer.render(template, context)
        except InvalidTemplate as invalid:
            return fail(notification, now, f"template does not render: {invalid}")
        notification.channel = channel.value
        notification.recipient = choice.address
        notification.subject = content.subject or content.title
        notification.attempts += 1
        notification.decided_at = now
        if channel is NotificationChannel.IN_APP:
            self.inbox.append(
                {
                    "notification_id": notification.notification_id,
                    "customer_id": notification.customer_id,
                    "title": content.title or "",
                    "body": content.body or "",
                    "category": category.value,
                    "created_at": now,
                }
            )
            return mark_sent(notification, now, provider_id=None)
        notification.status = SENDING
        notification.sender = config.sender
        notification.handed_at = None
        message = OutgoingMessage(
            notification_id=notification.notification_id,
            customer_id=notification.customer_id,
            channel=channel,
            recipient=choice.address,
            content=content,
            category=category,
            unsubscribe_url=link,
        )
        return _Send(message, notification.attempts)


async def _record(
    session: AsyncSession,
    config: DeliveryConfig,
    outcomes: Sequence[_Outcome],
    now: datetime,
    jitter: Callable[[], float],
) -> None:
    if not outcomes:
        return
    rows = {
        n.notification_id: n
        for n in await session.scalars(
            select(Notification).where(
                Notification.notification_id.in_([o.notification_id for o in outcomes])
            )
        )
    }
    events: list[CloudEvent] = []
    for outcome in outcomes:
        notification = rows.get(outcome.notification_id)
        if (
            notification is None
            or notification.status != SENDING
            or notification.sender != config.sender
        ):
            continue  # erased meanwhile, or recovered by a replica that took us for dead
        error = outcome.error
        if error is None:
            events.append(mark_sent(notification, now, outcome.provider_id))
            continue
        retry = isinstance(error, TransientDeliveryError) and next_attempt_or_fail(
            notification.attempts, config.policy
        )
        if retry:
            wait = retry_delay(notification.attempts, config.policy, jitter())
            if isinstance(error, TransientDeliveryError) and error.retry_after is not None:
                wait = max(wait, timedelta(seconds=error.retry_after))
            notification.status = SCHEDULED
            notification.due_at = now + wait
            notification.detail = f"attempt {notification.attempts} failed: {error.reason}"
            continue
        events.append(fail(notification, now, error.reason))
    await add_many_to_outbox(session, PLUMBING, events)
