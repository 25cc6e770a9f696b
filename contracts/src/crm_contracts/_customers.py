"""Customer events (topic crm.customers), published by profile-service, which owns customers."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from crm_contracts._bounds import EventTime
from crm_contracts._customer_limits import (
    MAX_CHANGED_FIELDS,
    MAX_CONSENT_SOURCE_LENGTH,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_EXTERNAL_IDS,
    MAX_FIELD_NAME_LENGTH,
    MAX_LOCALE_LENGTH,
    MAX_TIME_ZONE_LENGTH,
    Attributes,
    EmailText,
    ExternalId,
    PersonName,
    Tags,
)
from crm_contracts._payload import CustomerId, EventPayload, Topic

# The customer id is the Kafka key and the outbox's key column: bounded like it.
_CustomerKey = Annotated[CustomerId, Field(max_length=MAX_CUSTOMER_ID_LENGTH)]


class Channel(StrEnum):
    """A way of reaching a customer that consent is recorded for."""

    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"
    WEBHOOK = "webhook"


class Purpose(StrEnum):
    """What a consent decision is about.

    Marketing needs an opt-in and service messages do not. ``profiling`` is about no contact at
    all: it is the customer's right to object to automated evaluation (GDPR art. 21 and 22),
    so it is allowed until the customer objects (``granted`` false) and is not bound to a
    channel: the newest profiling decision on any channel speaks for the whole customer.
    """

    MARKETING = "marketing"
    SERVICE = "service"
    PROFILING = "profiling"


class ConsentState(BaseModel):
    """Whether a customer allows contact on one channel for one purpose, and since when."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    channel: Channel = Field(description="The channel the consent is for.", examples=["email"])
    purpose: Purpose = Field(description="The purpose the consent is for.", examples=["marketing"])
    granted: bool = Field(description="True when the customer allows contact.", examples=[True])
    source: str = Field(
        max_length=MAX_CONSENT_SOURCE_LENGTH,
        description="Where the customer gave or withdrew it.",
        examples=["signup_form", "unsubscribe_link", "import"],
    )
    changed_at: EventTime = Field(
        description="When the customer gave or withdrew it.", examples=["2025-01-02T08:00:00Z"]
    )


class CustomerSnapshot(BaseModel):
    """A customer's profile as it stands after a change; carried by customer.created/updated."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    customer_id: _CustomerKey
    external_ids: list[ExternalId] = Field(
        default=[],
        max_length=MAX_EXTERNAL_IDS,
        description="The ids shops and other systems know this customer by.",
        examples=[["shop-eu:8812"]],
    )
    email: EmailText | None = Field(default=None, examples=["ada@example.com"])
    phone: str | None = Field(
        default=None,
        pattern=r"^\+[1-9]\d{1,14}$",
        description="Phone number in E.164 form.",
        examples=["+4915112345678"],
    )
    first_name: PersonName | None = Field(default=None, examples=["Ada"])
    last_name: PersonName | None = Field(default=None, examples=["Lovelace"])
    time_zone: str | None = Field(
        default=None,
        max_length=MAX_TIME_ZONE_LENGTH,
        description="IANA time zone name.",
        examples=["Europe/Berlin"],
    )
    locale: str | None = Field(
        default=None,
        max_length=MAX_LOCALE_LENGTH,
        description="BCP 47 language tag.",
        examples=["de-DE"],
    )
    tags: Tags = Field(default=[], examples=[["newsletter", "b2b"]])
    attributes: Attributes = Field(
        default={},
        description="Free-form attributes the business keeps about the customer.",
        examples=[{"loyalty_card": True, "favourite_store": "Berlin Mitte"}],
    )
    consents: list[ConsentState] = Field(
        default=[],
        max_length=len(Channel) * len(Purpose),
        description="The latest consent per channel and purpose.",
    )
    created_at: EventTime = Field(examples=["2025-01-02T08:00:00Z"])
    updated_at: EventTime = Field(examples=["2025-03-14T09:30:00Z"])


class CustomerCreated(EventPayload):
    """A new customer profile exists: signed up, imported, or first seen on an order."""

    event_type: ClassVar[str] = "customer.created"
    topic: ClassVar[Topic] = Topic.CUSTOMERS

    customer: CustomerSnapshot

    @property
    def subject(self) -> str:
        """The new customer's id."""
        return self.customer.customer_id


class CustomerUpdated(EventPayload):
    """A customer's profile changed; `customer` is the whole profile after the change."""

    event_type: ClassVar[str] = "customer.updated"
    topic: ClassVar[Topic] = Topic.CUSTOMERS

    customer: CustomerSnapshot
    changed_fields: list[Annotated[str, Field(max_length=MAX_FIELD_NAME_LENGTH)]] = Field(
        max_length=MAX_CHANGED_FIELDS,
        description="The snapshot fields that changed.",
        examples=[["email", "tags"]],
    )

    @property
    def subject(self) -> str:
        """The changed customer's id."""
        return self.customer.customer_id


class CustomerMerged(EventPayload):
    """Two profiles turned out to be one person; the merged one now lives on in `customer_id`."""

    event_type: ClassVar[str] = "customer.merged"
    topic: ClassVar[Topic] = Topic.CUSTOMERS

    customer_id: _CustomerKey = Field(description="The surviving customer.")
    merged_customer_id: str = Field(
        min_length=1,
        max_length=MAX_CUSTOMER_ID_LENGTH,
        description="The customer folded into the survivor; the id is no longer used.",
        examples=["01932c4e-7777-7c3b-8d2e-9f0a1b2c3d4e"],
    )
    merged_at: EventTime = Field(examples=["2025-03-14T09:30:00Z"])


class CustomerErased(EventPayload):
    """A customer's personal data was erased (GDPR); every service forgets what it holds on them."""

    event_type: ClassVar[str] = "customer.erased"
    topic: ClassVar[Topic] = Topic.CUSTOMERS

    customer_id: _CustomerKey
    erased_at: EventTime = Field(examples=["2025-03-14T09:30:00Z"])


class ConsentChanged(EventPayload):
    """A customer gave or withdrew consent for one channel and purpose."""

    event_type: ClassVar[str] = "consent.changed"
    topic: ClassVar[Topic] = Topic.CUSTOMERS

    customer_id: _CustomerKey
    consent: ConsentState = Field(description="The consent as it stands now.")


def profiling_decision(
    payload: EventPayload,
) -> ConsentState | None:
    """The profiling decision a customer event carries, if any (consumers of objections).

    ``consent.changed`` carries it when the purpose is ``profiling``; ``customer.created`` and
    ``customer.updated`` carry it in their snapshot's consents (an import or a merge may set it).
    """
    if isinstance(payload, ConsentChanged):
        return payload.consent if payload.consent.purpose is Purpose.PROFILING else None
    if isinstance(payload, CustomerCreated | CustomerUpdated):
        decisions = [c for c in payload.customer.consents if c.purpose is Purpose.PROFILING]
        return max(decisions, key=lambda c: c.changed_at, default=None)
    return None
