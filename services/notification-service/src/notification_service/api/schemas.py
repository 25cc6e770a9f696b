"""Request and response bodies of notification-service's API.

Rule bodies give the shape (types, known fields); what the values mean (known stages, ranges,
the template existing) is checked by the domain, which names every field at fault.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from crm_contracts import Category, NotificationChannel
from crm_shared import Page, request_body_config

NotificationStatus = Literal["scheduled", "sending", "sent", "failed", "suppressed"]
TemplateSource = Annotated[str, Field(max_length=100_000)]

# --- rules --------------------------------------------------------------------------------------


class ConditionsDocument(BaseModel):
    """What the triggering event must show for the rule to fire; null or absent means any."""

    model_config = ConfigDict(extra="forbid")

    stages: list[str] | None = Field(
        default=None, description="Lifecycle stages (for stage_changed: the stage entered)."
    )
    previous_stages: list[str] | None = Field(
        default=None, description="lifecycle.stage_changed only: the stage left."
    )
    tiers: list[str] | None = Field(
        default=None, description="Value tiers: strategic_partner, growth, profit, basic."
    )
    grades: list[str] | None = Field(default=None, description="Customer grades.")
    churn_risk_min: float | None = Field(default=None, description="Inclusive, 0 to 1.")
    churn_risk_max: float | None = Field(default=None, description="Inclusive, 0 to 1.")
    segments: list[str] | None = Field(default=None, description="RFM segment names.")
    clusters: list[str] | None = Field(default=None, description="K-means segment labels.")
    recommended_actions: list[str] | None = Field(
        default=None,
        description="churn.warning only: account_manager_task or retention_offer.",
    )
    first_order_only: StrictBool = Field(
        default=False, description="order.placed only: the customer's first order."
    )
    activity_types: list[str] | None = Field(
        default=None,
        max_length=50,
        description="activity.recorded only: activity types, e.g. cart_abandoned.",
    )
    feedback_kinds: list[str] | None = Field(
        default=None,
        max_length=10,
        description="feedback.recorded only: complaint, ticket_opened, ticket_resolved, "
        "survey_answer, return_requested.",
    )
    surveys: list[str] | None = Field(
        default=None, max_length=10, description="feedback.recorded only: nps or csat answers."
    )
    survey_score_min: StrictInt | None = Field(
        default=None, description="feedback.recorded only: answers scoring at least this (0-10)."
    )
    survey_score_max: StrictInt | None = Field(
        default=None,
        description="feedback.recorded only: answers scoring at most this (0-10; 6 for NPS "
        "detractors).",
    )
    warning_statuses: list[str] = Field(
        default=["open"],
        description="churn.warning only: open, updated, saved, lost. Open alone messages once.",
    )
    unless_ordered_since_trigger: StrictBool = Field(
        default=False,
        description="Checked when the message is due: not sent if the customer bought since.",
    )


class _RuleFields(BaseModel):
    name: str = Field(max_length=200, description="What the rule is for, for people.")
    enabled: StrictBool = Field(default=True, description="A disabled rule queues nothing.")
    event_type: str = Field(
        description="churn.warning, lifecycle.stage_changed, customer.created, order.placed,"
        " activity.recorded or feedback.recorded."
    )
    conditions: ConditionsDocument = Field(default_factory=ConditionsDocument)
    template_id: str = Field(description="Needs a text for every channel listed.")
    channels: list[NotificationChannel] = Field(
        description="Tried in order: the first the customer can be reached on (and, for "
        "marketing, has consented to) carries the message."
    )
    category: Category = Field(
        description="marketing needs consent and counts against the cap; the template's own."
    )
    priority: StrictInt = Field(
        default=0, description="Higher wins when marketing messages compete for the cap."
    )
    delay: str = Field(
        default="PT0S", description="ISO 8601 duration after the event, e.g. P15D or PT2H."
    )
    holdout_share: float | None = Field(
        default=None,
        description="Share of the customers the rule fires for that it holds back as a control"
        " group (0 to 0.5), chosen by a stable hash of rule and customer; their messages are"
        " suppressed with reason holdout. Absent: 0.1 for marketing, 0 for service rules.",
        examples=[0.1],
    )


class RuleIn(_RuleFields):
    """A playbook rule to create or replace, as GET returns it."""

    model_config = request_body_config(
        {
            "rule_id": "vip-dormant-call",
            "name": "Wake-up email for dormant growth customers",
            "event_type": "lifecycle.stage_changed",
            "conditions": {"stages": ["dormant"], "tiers": ["growth"]},
            "template_id": "dormant-wake-up",
            "channels": ["email", "in_app"],
            "category": "marketing",
            "priority": 65,
            "delay": "P1D",
            "holdout_share": 0.1,
        }
    )

    rule_id: str | None = Field(
        default=None,
        max_length=80,
        description="A lower-case slug; required to create, optional (the path's) to replace.",
    )


class RuleView(_RuleFields):
    """A playbook rule: which event sends which template to whom, on which channel, when."""

    rule_id: str


# --- templates ----------------------------------------------------------------------------------


class TemplateText(BaseModel):
    """One channel's text of a template: the Jinja2 source of each part."""

    model_config = request_body_config(
        {
            "parts": {
                "subject": "We have missed you, {{ customer.first_name or 'friend' }}",
                "text_body": "Come back for 10% off.\n\n{{ unsubscribe_url }}",
            }
        }
    )

    parts: dict[str, TemplateSource] = Field(
        description="email: subject, text_body, optional html_body; sms: text; "
        "webhook: json_body; in_app: title, body."
    )
    category: Category | None = Field(
        default=None,
        description="marketing or service, for every channel's text of the template; rules "
        "and one-off sends take it from here. Omitted: unchanged (marketing for a new one).",
    )


class TemplateView(BaseModel):
    """A template's text for one channel."""

    template_id: str
    channel: NotificationChannel
    category: Category
    parts: dict[str, str]


class TemplateDetail(BaseModel):
    """A template: its text for each channel it has, and the rules that send it."""

    template_id: str
    category: Category = Field(description="marketing needs consent; its rules share it.")
    texts: dict[NotificationChannel, dict[str, str]] = Field(
        description="The parts of each channel's text, by channel."
    )
    used_by: list[str] = Field(description="Ids of the rules that send this template.")


class PreviewRequest(BaseModel):
    """What to render: a stored template, or draft parts, for the sample or a customer."""

    model_config = request_body_config(
        {"template_id": "retention-offer", "channel": "email"},
        {
            "channel": "sms",
            "parts": {"text": "Hi {{ customer.first_name }}"},
            "customer_id": "c-42",
        },
    )

    template_id: str | None = Field(
        default=None, description="The stored template; with parts, only names the draft."
    )
    channel: NotificationChannel
    parts: dict[str, TemplateSource] | None = Field(
        default=None, description="Draft parts to render instead of the stored text."
    )
    customer_id: str | None = Field(
        default=None, description="Render with this customer's data; absent: the sample."
    )

    @model_validator(mode="after")
    def _something_to_render(self) -> PreviewRequest:
        if self.template_id is None and self.parts is None:
            raise ValueError("give template_id or parts")
        return self


class PreviewView(BaseModel):
    """A template rendered as it would be sent."""

    template_id: str | None
    channel: NotificationChannel
    customer_id: str | None = Field(description="Null: rendered with the sample data.")
    parts: dict[str, str] = Field(description="The rendered parts, by name.")


# --- notifications ------------------------------------------------------------------------------


class OutcomeCountView(BaseModel):
    """Messages of one rule that ended in one status, with the suppression reason."""

    rule_id: str | None = Field(description="Null for send-now messages.")
    status: NotificationStatus
    reason: str | None = Field(description="Why they were suppressed; null otherwise.")
    messages: int


class NotificationView(BaseModel):
    """One message decided for one customer, and what became of it."""

    notification_id: str
    customer_id: str
    rule_id: str | None = Field(description="Null for a send-now.")
    template_id: str
    channels: list[NotificationChannel] = Field(description="The channels to try, in order.")
    channel: NotificationChannel | None = Field(description="The channel chosen; null until then.")
    category: Category
    priority: int
    status: NotificationStatus = Field(
        description="scheduled, sending, then sent or failed; or suppressed (see reason)."
    )
    reason: str | None = Field(description="Why it was suppressed.")
    detail: str | None = Field(description="The last deferral, failure or suppression, in words.")
    trigger_event_id: str | None
    trigger_type: str | None
    trigger_at: datetime | None = Field(description="When the triggering event happened.")
    assignment: Literal["treatment", "holdout"] | None = Field(
        description="The rule's group for this customer once its hold-out check ran; null for"
        " one-off sends and messages stopped before it."
    )
    created_at: datetime
    intended_at: datetime = Field(description="When the rule wanted it sent.")
    due_at: datetime = Field(description="When it is (or was) next due; deferrals move it.")
    decided_at: datetime | None = Field(description="When it was handed to its channel.")
    finished_at: datetime | None
    attempts: int
    recipient: str | None = Field(description="The address it went to.")
    subject: str | None = Field(description="The subject or title rendered.")
    provider_id: str | None = Field(description="The provider's message id.")


class SendNowRequest(BaseModel):
    """Send a template to one customer now, outside the playbook (to try a template)."""

    model_config = request_body_config(
        {"customer_id": "c-42", "template_id": "retention-offer", "channel": "email"}
    )

    customer_id: str = Field(max_length=64)
    template_id: str = Field(max_length=80)
    channel: NotificationChannel | None = Field(default=None, description="One channel...")
    channels: list[NotificationChannel] | None = Field(
        default=None, min_length=1, description="...or several, tried in order."
    )
    category: Category | None = Field(
        default=None,
        description="The template's category (marketing: consent and the cap apply); omit "
        "it, or give the same: another one is refused.",
    )

    @model_validator(mode="after")
    def _one_way_to_name_channels(self) -> SendNowRequest:
        if (self.channel is None) == (self.channels is None):
            raise ValueError("give either channel or channels")
        return self

    @property
    def channels_to_try(self) -> list[NotificationChannel]:
        """The channels in the order to try them."""
        return [self.channel] if self.channel is not None else list(self.channels or [])


# --- inbox --------------------------------------------------------------------------------------


class InboxMessageView(BaseModel):
    """An in-app message."""

    message_id: int
    notification_id: str
    title: str
    body: str
    category: Category
    created_at: datetime
    read_at: datetime | None = Field(description="When it was first marked read; null: unread.")


class InboxPage(Page[InboxMessageView]):
    """A page of a customer's inbox, newest first, with how many messages are unread."""

    unread_count: int = Field(description="Unread messages in the whole inbox.")


class InboxReadAll(BaseModel):
    """What marking the whole inbox read changed."""

    marked: int = Field(description="Messages that were unread.")
    unread_count: int
