"""What every event payload shares: the base model, money, and the topics payloads travel on."""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from crm_contracts._bounds import CurrencyCode, within_money_bounds

CustomerId = Annotated[
    str,
    Field(
        min_length=1,
        description="The CRM customer this event is about (the event's subject and Kafka key).",
        examples=["01932c4e-5f1a-7c3b-8d2e-9f0a1b2c3d4e"],
    ),
]


class Topic(StrEnum):
    """The Kafka topics, one per stream. Every event of a customer is keyed by its customer id."""

    ORDERS = "crm.orders"
    CUSTOMERS = "crm.customers"
    ACTIVITIES = "crm.activities"
    SCORES = "crm.scores"
    LIFECYCLE = "crm.lifecycle"
    NOTIFICATIONS = "crm.notifications"
    # Order intake documents from shops that name customers by their own identities; only
    # profile-service reads it, and publishes the resolved `order.*` events on crm.orders.
    ORDER_INTAKE = "crm.order-intake"


def dead_letter_topic(topic: str, consumer_group: str) -> str:
    """Return the dead-letter topic beside `consumer_group`'s input `topic`."""
    return f"{topic}.{consumer_group}.dlq"


class EventPayload(BaseModel):
    """The `data` of a CloudEvent: one business fact about one customer.

    Subclasses set `event_type` (the CloudEvents `type`) and `topic`, and their subject is the
    customer the fact is about: the CloudEvents `subject` and the Kafka key.
    """

    # extra="ignore": a consumer running an older contract must keep working when a producer adds
    # a field, so unknown fields are dropped rather than rejected. Renames and removals still need
    # a new event type. Non-finite floats are never meaningful here (and are not valid JSON).
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)

    event_type: ClassVar[str]
    topic: ClassVar[Topic]

    @property
    def subject(self) -> str:
        """The id of the customer this event is about (payloads without `customer_id` override)."""
        customer_id = getattr(self, "customer_id", None)
        if not isinstance(customer_id, str):
            raise TypeError(f"{type(self).__name__} must define `subject`: it has no customer_id")
        return customer_id


_DECIMAL_STRING = re.compile(r"-?\d{1,30}(\.\d{1,30})?")


def _exact_amount(value: object) -> object:
    # A float has already lost the exact amount (0.1 is 0.1000000000000000055...), so floats are
    # refused, from JSON and from Python alike; the canonical form on the wire is a decimal string
    # such as "12.50". Integers are exact and accepted for tolerance. Exponent notation ("1e3"),
    # whitespace and NaN/Infinity strings are refused so the JSON Schema pattern tells the truth.
    if isinstance(value, bool | float) or (
        isinstance(value, str) and not _DECIMAL_STRING.fullmatch(value)
    ):
        raise PydanticCustomError(
            "decimal_string",
            'money amount must be a decimal string such as "12.50", got {given}',
            {"given": repr(value)},
        )
    return value


MoneyAmount = Annotated[
    Decimal,
    BeforeValidator(_exact_amount),
    AfterValidator(within_money_bounds),
    # format(..., "f") never uses exponent notation: Decimal("1E+3") goes out as "1000".
    PlainSerializer(lambda amount: format(amount, "f"), return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^-?\d{1,30}(\.\d{1,30})?$",
            "description": (
                "A decimal number written as a string; never a float. Below a quadrillion in"
                " size (an order's amounts below a trillion), with at most six decimal places."
            ),
            "examples": ["12.50"],
        }
    ),
]


class Money(BaseModel):
    """An exact amount of money in one currency: {"amount": "12.50", "currency": "EUR"}."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    amount: MoneyAmount = Field(allow_inf_nan=False)
    currency: CurrencyCode
