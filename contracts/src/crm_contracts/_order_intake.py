"""Order intake documents: an order as a shop knows it, naming the customer by its own identities.

A shop that holds CRM customer ids publishes `order.*` events to `crm.orders` itself. A shop that
knows its customers by e-mail, phone or its own customer id sends these documents instead, either
as the body of `POST /v1/orders` or as the value of a message on `crm.order-intake`: the same JSON
either way. profile-service finds or creates the customer, accepts each order event once (by order
id, and refund id) and publishes the canonical event with the CRM customer id on `crm.orders`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from crm_contracts._envelope import _describe, _field_of
from crm_contracts._errors import InvalidEvent
from crm_contracts._orders import (
    MAX_CUSTOMER_ID_LENGTH,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    OrderCancellation,
    OrderPlacement,
    OrderRefund,
)

_Identity = Annotated[str, Field(max_length=MAX_ID_LENGTH)]
_Name = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]


class CustomerReference(BaseModel):
    """Who bought: the CRM customer id, or identities to find or create the customer by."""

    model_config = ConfigDict(extra="forbid")

    customer_id: Annotated[str, Field(max_length=MAX_CUSTOMER_ID_LENGTH)] | None = Field(
        default=None, description="The CRM customer id, if known."
    )
    external_id: _Identity | None = Field(default=None, examples=["shop-eu:8812"])
    email: Annotated[str, Field(max_length=320)] | None = Field(
        default=None, examples=["ada@example.com"]
    )
    phone: _Identity | None = Field(default=None, examples=["+4915112345678"])
    first_name: _Name | None = None
    last_name: _Name | None = None
    time_zone: _Identity | None = None
    locale: _Identity | None = None

    @model_validator(mode="after")
    def _identifies_someone(self) -> CustomerReference:
        if not (self.customer_id or self.external_id or self.email or self.phone):
            raise ValueError("give customer_id, external_id, email or phone")
        return self


class PlacedOrder(OrderPlacement):
    """An order the customer placed."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["order.placed"]
    customer: CustomerReference


class RefundedOrder(OrderRefund):
    """Money given back on an order; each refund has its own id."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["order.refunded"]
    customer: CustomerReference | None = Field(
        default=None, description="Needed only if the order was not placed through the intake."
    )


class CancelledOrder(OrderCancellation):
    """An order called off before fulfilment."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["order.cancelled"]
    customer: CustomerReference | None = Field(
        default=None, description="Needed only if the order was not placed through the intake."
    )


OrderIntakeDocument = PlacedOrder | RefundedOrder | CancelledOrder
"""One order event as a shop sends it to the intake."""

OrderIntake = Annotated[OrderIntakeDocument, Field(discriminator="type")]
"""The intake document, told apart by its `type`."""

_INTAKE = TypeAdapter[OrderIntakeDocument](OrderIntake)


def decode_order_intake(raw: bytes | str) -> OrderIntakeDocument:
    """Parse a `crm.order-intake` message value; raise `InvalidEvent` naming the field at fault.

    The fields are named as over HTTP: under the document's type (`order.placed.total.amount`).
    """
    try:
        return _INTAKE.validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise InvalidEvent(_describe(errors), field=_field_of(errors[0])) from None
