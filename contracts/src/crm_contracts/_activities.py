"""Activity and feedback events (topic crm.activities): what a customer did besides buying.

Two event types share the topic:

- ``activity.recorded``: behaviour (a page view, an email click, a login, an abandoned cart).
  Scoring counts it as engagement; notification can trigger on its ``activity_type``.
- ``feedback.recorded``: what a customer told the shop: a complaint, a support ticket opened or
  resolved, a survey answer (NPS or CSAT, 0-10), a return request. It never counts as
  engagement: a complaint is not a sign of a healthy relationship.

The facts (`ActivityFacts`, `FeedbackFacts`) are what profile-service's HTTP intake accepts in a
request body; the events add the customer id. Both are bounded here, once, so a body posted
over HTTP and an event read from Kafka are judged by the same rule.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Final

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from crm_contracts._bounds import EventTime
from crm_contracts._customer_limits import Attributes
from crm_contracts._payload import CustomerId, EventPayload, Topic

MAX_ACTIVITY_ID_LENGTH: Final = 200
MAX_ACTIVITY_TYPE_LENGTH: Final = 64
MAX_FEEDBACK_TOPIC_LENGTH: Final = 64
# CRM customer ids are UUIDs; the narrowest store downstream holds 36 characters.
MAX_FEEDBACK_CUSTOMER_ID_LENGTH: Final = 36

CART_ABANDONED: Final = "cart_abandoned"
"""The activity type a shop sends when a customer leaves a filled cart without ordering."""

NPS_DETRACTOR_MAX: Final = 6
NPS_PROMOTER_MIN: Final = 9

ActivityCustomerId = Annotated[CustomerId, Field(max_length=MAX_FEEDBACK_CUSTOMER_ID_LENGTH)]
EventId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ACTIVITY_ID_LENGTH,
        description="Unique per report, so a repeated report counts once.",
        examples=["act-7f3a9c"],
    ),
]
Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ACTIVITY_TYPE_LENGTH,
        pattern=r"^[a-z][a-z0-9_.-]*$",
        description="A lower-case name: letters, digits, '_', '.' or '-'.",
    ),
]


class ActivityFacts(BaseModel):
    """What an activity is, whoever sends it: the `activity.recorded` facts."""

    activity_id: EventId
    activity_type: Slug = Field(
        description=(
            "What the customer did, as a lower-case name; `cart_abandoned` is the one"
            " notification playbooks remind about."
        ),
        examples=["page_view", "email_open", "email_click", "login", "cart_add", CART_ABANDONED],
    )
    occurred_at: EventTime = Field(
        description="When the customer did it.", examples=["2025-03-14T09:20:00Z"]
    )
    properties: Attributes = Field(
        default={},
        description="Scalar details that depend on the activity type (same bounds as a "
        "customer's attributes).",
        examples=[{"url": "/products/tee-red", "sku": "TEE-RED-M"}],
    )


class ActivityRecorded(EventPayload, ActivityFacts):
    """A customer did something worth knowing: viewed a page, opened an email, left a cart."""

    event_type: ClassVar[str] = "activity.recorded"
    topic: ClassVar[Topic] = Topic.ACTIVITIES

    customer_id: ActivityCustomerId


class FeedbackKind(StrEnum):
    """What kind of feedback a customer gave."""

    COMPLAINT = "complaint"
    TICKET_OPENED = "ticket_opened"
    TICKET_RESOLVED = "ticket_resolved"
    SURVEY_ANSWER = "survey_answer"
    RETURN_REQUESTED = "return_requested"


class Survey(StrEnum):
    """Which question a survey answer replies to, both on a 0-10 scale.

    ``nps``: "How likely are you to recommend us?" (0-6 detractor, 7-8 passive, 9-10 promoter).
    ``csat``: "How satisfied were you?" (0 not at all, 10 completely).
    """

    NPS = "nps"
    CSAT = "csat"


_TICKET_KINDS: Final = frozenset({FeedbackKind.TICKET_OPENED, FeedbackKind.TICKET_RESOLVED})


class FeedbackFacts(BaseModel):
    """What a piece of feedback is, whoever sends it: the `feedback.recorded` facts.

    A survey answer carries ``survey`` and ``score`` (and nothing else does); a ticket event
    carries the ``ticket_id`` that links its opening to its resolution.
    """

    feedback_id: EventId = Field(examples=["fb-20250314-0042"])
    kind: FeedbackKind = Field(examples=["complaint"])
    occurred_at: EventTime = Field(
        description="When the customer gave it (or the ticket changed).",
        examples=["2025-03-14T09:20:00Z"],
    )
    survey: Survey | None = Field(
        default=None, description="Survey answers only: NPS or CSAT.", examples=["nps"]
    )
    score: int | None = Field(
        default=None, ge=0, le=10, description="Survey answers only: 0-10.", examples=[4]
    )
    ticket_id: Annotated[str, Field(min_length=1, max_length=MAX_ACTIVITY_ID_LENGTH)] | None = (
        Field(
            default=None,
            description="Ticket events only: the support ticket opened or resolved.",
            examples=["T-5521"],
        )
    )
    order_id: Annotated[str, Field(min_length=1, max_length=MAX_ACTIVITY_ID_LENGTH)] | None = Field(
        default=None,
        description="The order the feedback is about, when there is one.",
        examples=["ord-100234"],
    )
    about: Slug | None = Field(
        default=None,
        description="What it is about, as the shop classifies it (no free text: it may hold "
        "personal data).",
        examples=["late_delivery", "damaged_item"],
    )

    @model_validator(mode="after")
    def _fields_of_the_kind(self) -> FeedbackFacts:
        errors: list[InitErrorDetails] = []

        def refuse(field: str, kind: str, message: str) -> None:
            error = PydanticCustomError(kind, message)
            errors.append(InitErrorDetails(type=error, loc=(field,), input=getattr(self, field)))

        if self.kind is FeedbackKind.SURVEY_ANSWER:
            for name in ("survey", "score"):
                if getattr(self, name) is None:
                    refuse(name, "missing_for_kind", "a survey answer needs survey and score")
        else:
            for name in ("survey", "score"):
                if getattr(self, name) is not None:
                    refuse(name, "not_for_kind", "only a survey answer carries survey and score")
        if self.kind in _TICKET_KINDS and self.ticket_id is None:
            refuse("ticket_id", "missing_for_kind", "a ticket event needs its ticket_id")
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


class FeedbackRecorded(EventPayload, FeedbackFacts):
    """A customer gave feedback: a complaint, a ticket, a survey answer or a return request."""

    event_type: ClassVar[str] = "feedback.recorded"
    topic: ClassVar[Topic] = Topic.ACTIVITIES

    customer_id: ActivityCustomerId


def nps_group(score: int) -> str:
    """``promoter`` (9-10), ``passive`` (7-8) or ``detractor`` (0-6) for an NPS answer."""
    if score >= NPS_PROMOTER_MIN:
        return "promoter"
    if score <= NPS_DETRACTOR_MAX:
        return "detractor"
    return "passive"
