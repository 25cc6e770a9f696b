"""Request and response bodies of the customer endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from crm_contracts import (
    MAX_EMAIL_LENGTH,
    MAX_EXTERNAL_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    Attributes,
    Channel,
    ConsentState,
    EventTime,
    Purpose,
)
from crm_shared import request_body_config

_EXAMPLE_ID = "0193a5c2-7d41-7c3e-9a8b-2f0c1d2e3f40"


class CustomerIn(BaseModel):
    """A new customer, or new details for the one its identities match."""

    model_config = request_body_config(
        {
            "external_id": "shop-eu:8812",
            "email": "ada@example.com",
            "phone": "+44 20 7946 0958",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "time_zone": "Europe/London",
            "locale": "en-GB",
            "tags": ["newsletter"],
            "attributes": {"loyalty_card": True},
        }
    )

    # The limits are the customer contract's (crm_contracts), so that every profile
    # accepted here fits in the customer event that publishes it.
    external_id: str | None = Field(
        default=None,
        max_length=MAX_EXTERNAL_ID_LENGTH,
        description="The shop's id for the customer.",
    )
    email: str | None = Field(default=None, max_length=MAX_EMAIL_LENGTH)
    phone: str | None = Field(
        default=None, max_length=50, description="Any format; stored as E.164."
    )
    first_name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    last_name: str | None = Field(default=None, max_length=MAX_NAME_LENGTH)
    time_zone: str | None = Field(
        default=None, max_length=64, description="IANA name, e.g. Europe/Berlin."
    )
    locale: str | None = Field(default=None, max_length=35, description="BCP 47 tag, e.g. de-DE.")
    attributes: Attributes | None = Field(default=None)
    tags: list[Annotated[str, Field(max_length=MAX_TAG_LENGTH)]] | None = Field(
        default=None, max_length=MAX_TAGS, description=f"At most {MAX_TAGS} tags."
    )


class CustomerPatch(CustomerIn):
    """Fields to change; absent fields stay, null clears."""

    model_config = request_body_config({"locale": "fr-FR"})


class CustomerOut(BaseModel):
    """A customer profile."""

    id: str = Field(examples=[_EXAMPLE_ID])
    external_ids: list[str]
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    time_zone: str | None
    locale: str | None
    attributes: dict[str, Any]
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class ConsentIn(BaseModel):
    """A customer's decision for one channel and purpose."""

    model_config = request_body_config({"granted": True, "source": "checkout-form"})

    granted: bool
    source: str = Field(min_length=1, max_length=100, description="Where it was given.")
    changed_at: EventTime | None = Field(
        default=None,
        description="When the customer decided; defaults to now. Never in the future (beyond"
        " a few minutes of clock skew): the newest decision wins.",
    )


class ConsentOut(ConsentState):
    """A stored consent decision."""


class ConsentPath(BaseModel):
    """Channel and purpose as path parameters."""

    channel: Channel
    purpose: Purpose


class MergeIn(BaseModel):
    """Which customer to fold into the one in the path."""

    model_config = request_body_config({"merged_customer_id": _EXAMPLE_ID, "reason": "same person"})

    merged_customer_id: str = Field(
        max_length=200, description="This customer disappears into the other."
    )
    reason: str | None = Field(default=None, max_length=500)


class MergeOut(BaseModel):
    """Audit record of a merge."""

    id: str
    surviving_customer_id: str
    merged_customer_id: str
    merged_at: datetime
    requested_by: str
    reason: str | None
    moved_identities: int


class ProfilingOut(BaseModel):
    """Whether the customer objects to profiling (GDPR art. 21/22), and what is withheld."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "objected": True,
                    "since": "2025-03-14T09:30:00Z",
                    "withheld": ["scores", "segments", "churn_warning"],
                }
            ]
        }
    )

    objected: bool = Field(
        description="True when the customer's newest profiling decision is an objection;"
        " never asked means profiling is allowed (art. 21 is a right to object)."
    )
    since: datetime | None = Field(
        default=None, description="When the customer objected (null when not objecting)."
    )
    withheld: list[str] = Field(
        default=[],
        description="What is not computed or shown while the customer objects: scores,"
        " segments and churn warnings. Orders and service messages carry on.",
    )


class Customer360(BaseModel):
    """Everything known about a customer at a glance."""

    profile: CustomerOut
    consents: list[ConsentOut]
    profiling: ProfilingOut = Field(
        description="The profiling objection; while it stands, scores and warnings are null."
    )
    scores: dict[str, Any] | None = Field(
        description="Latest scores from scoring-service; null when none or withheld."
    )
    lifecycle: dict[str, Any] | None = Field(description="Current stage from lifecycle-service.")
    churn_warning: dict[str, Any] | None = Field(
        description="Latest churn warning; null when none or withheld (profiling objection)."
    )
    recent_notifications: list[dict[str, Any]]


class ReportAccepted(BaseModel):
    """An activity or feedback report accepted for publishing."""

    event_id: str
    event_type: str = Field(examples=["feedback.recorded"])
    report_id: str = Field(description="The activity or feedback id posted.")
    customer_id: str
    duplicate: bool = Field(description="True when this exact report was accepted before.")


class OrderAccepted(BaseModel):
    """An order event accepted for publishing."""

    event_id: str
    event_type: str
    order_id: str
    customer_id: str
    duplicate: bool = Field(description="True when this exact order event was accepted before.")
