"""What a template sees: the customer, their scores and stage, the trigger, the unsubscribe link.

Every key of the preview's sample context is present (unknown values are None), so a template
that renders in the preview cannot fail at send time on a missing name.
"""

from __future__ import annotations

from typing import Any

from crm_contracts import Category, Channel, NotificationChannel, Purpose
from notification_service.db.models import Contact
from notification_service.domain.signing import unsubscribe_token
from notification_service.domain.templates import SAMPLE_CONTEXT
from notification_service.workflows.due_rows import DueRow

# The consent channel each delivery channel is governed by (profile-service has no in-app one).
CONSENT_CHANNEL = {
    NotificationChannel.EMAIL: Channel.EMAIL,
    NotificationChannel.SMS: Channel.SMS,
    NotificationChannel.IN_APP: Channel.PUSH,
    NotificationChannel.WEBHOOK: Channel.WEBHOOK,
}


def unsubscribe_url(
    base_url: str, secret: bytes, customer_id: str, channel: NotificationChannel, category: Category
) -> str:
    """The signed link that records an opt-out of this channel for this kind of message."""
    purpose = Purpose.MARKETING if category is Category.MARKETING else Purpose.SERVICE
    token = unsubscribe_token(secret, customer_id, channel, purpose)
    return f"{base_url.rstrip('/')}/v1/unsubscribe/{token}"


def message_context(
    contact: Contact, notification: DueRow, unsubscribe: str | None
) -> dict[str, Any]:
    """The render context of ``notification`` for ``contact``."""
    return customer_context(
        contact,
        unsubscribe,
        facts=notification.trigger_facts or {},
        event={
            "id": notification.trigger_event_id,
            "type": notification.trigger_type,
            "time": notification.trigger_at.isoformat() if notification.trigger_at else None,
        },
    )


def customer_context(
    contact: Contact,
    unsubscribe: str | None,
    *,
    facts: dict[str, Any] | None = None,
    event: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The render context for ``contact``; without ``facts`` and ``event`` it is what a
    message sent outside any trigger sees (a send-now, a preview): no warning, no order."""
    facts = facts or {}
    stage = facts.get("stage") or {"stage": contact.stage, "previous_stage": contact.previous_stage}
    return {
        "customer": {
            "id": contact.customer_id,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "email": contact.email,
            "phone": contact.phone,
            "locale": contact.locale,
            "time_zone": contact.time_zone,
            "tags": list(contact.tags or []),
            "attributes": dict(contact.attributes or {}),
        },
        "scores": _complete(SAMPLE_CONTEXT["scores"], contact.scores or {}),
        "stage": stage,
        "warning": facts.get("warning"),
        "order": facts.get("order"),
        "activity": facts.get("activity"),
        "feedback": facts.get("feedback"),
        "event": event or {"id": None, "type": None, "time": None},
        "unsubscribe_url": unsubscribe,
    }


def _complete(shape: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    return {**dict.fromkeys(shape), **values}
