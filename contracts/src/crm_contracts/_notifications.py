"""Notification events (topic crm.notifications), published by notification-service."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from crm_contracts._bounds import EventTime
from crm_contracts._payload import CustomerId, EventPayload, Topic

SuppressionReason = Literal[
    "no_consent",
    "frequency_cap",
    "lower_priority",
    "duplicate",
    "no_contact",
    "unsubscribed",
    "rule_disabled",
    "no_longer_applies",
    "holdout",
    "profiling_objection",
]
"""Why a notification was not sent: the reasons ``notification.suppressed`` carries."""


class NotificationChannel(StrEnum):
    """How a notification is delivered."""

    EMAIL = "email"
    SMS = "sms"
    WEBHOOK = "webhook"
    IN_APP = "in_app"


class Category(StrEnum):
    """Service messages concern an order or the account; marketing messages need consent."""

    SERVICE = "service"
    MARKETING = "marketing"


NotificationId = Annotated[
    str,
    Field(
        min_length=1,
        description="One notification, across its attempts.",
        examples=["01932c50-2222-7c3b-8d2e-9f0a1b2c3d4e"],
    ),
]
RuleId = Annotated[
    str | None,
    Field(description="The playbook rule that chose to notify.", examples=["winback-vip"]),
]
TriggerEventId = Annotated[
    str | None,
    Field(
        description="The id of the event that triggered the notification.",
        examples=["01932c4f-1111-7c3b-8d2e-9f0a1b2c3d4e"],
    ),
]


class NotificationSent(EventPayload):
    """A notification was handed to its channel (mail server, SMS gateway, webhook, inbox)."""

    event_type: ClassVar[str] = "notification.sent"
    topic: ClassVar[Topic] = Topic.NOTIFICATIONS

    notification_id: NotificationId
    customer_id: CustomerId
    rule_id: RuleId = None
    template_id: str | None = Field(default=None, examples=["winback-offer-v2"])
    channel: NotificationChannel = Field(examples=["email"])
    category: Category = Field(examples=["marketing"])
    trigger_event_id: TriggerEventId = None
    sent_at: EventTime = Field(examples=["2025-03-14T09:31:00Z"])


class NotificationFailed(EventPayload):
    """A notification could not be delivered; `permanent` says whether it will be retried."""

    event_type: ClassVar[str] = "notification.failed"
    topic: ClassVar[Topic] = Topic.NOTIFICATIONS

    notification_id: NotificationId
    customer_id: CustomerId
    rule_id: RuleId = None
    template_id: str | None = Field(default=None, examples=["winback-offer-v2"])
    channel: NotificationChannel = Field(examples=["sms"])
    category: Category = Field(examples=["marketing"])
    trigger_event_id: TriggerEventId = None
    failed_at: EventTime = Field(examples=["2025-03-14T09:31:00Z"])
    attempts: int = Field(ge=1, description="Delivery attempts made so far.", examples=[3])
    permanent: bool = Field(description="True when no further attempt will be made.")
    error: str = Field(
        description="What went wrong, without personal data.",
        examples=["SMTP 550 mailbox unavailable"],
    )


class NotificationSuppressed(EventPayload):
    """A rule wanted to notify the customer but the notification was held back, and why."""

    event_type: ClassVar[str] = "notification.suppressed"
    topic: ClassVar[Topic] = Topic.NOTIFICATIONS

    notification_id: NotificationId
    customer_id: CustomerId
    rule_id: RuleId = None
    channel: NotificationChannel | None = Field(
        default=None, description="Null when no channel could be chosen.", examples=["email"]
    )
    category: Category = Field(examples=["marketing"])
    trigger_event_id: TriggerEventId = None
    suppressed_at: EventTime = Field(examples=["2025-03-14T09:31:00Z"])
    reason: SuppressionReason = Field(
        examples=["frequency_cap"],
        description="no_longer_applies: the rule's send-time condition failed"
        " (e.g. the customer bought again before a delayed offer). holdout: the customer is in"
        " the rule's control group (a stable share of its customers, never messaged by it, so"
        " that its effect can be measured). profiling_objection: the rule acts on scores or a churn"
        " warning and the customer objects to profiling.",
    )
    detail: str | None = Field(
        default=None,
        description="More about the reason.",
        examples=["3 marketing emails in 7 days"],
    )
