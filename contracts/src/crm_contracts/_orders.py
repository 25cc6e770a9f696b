"""Order events (topic crm.orders), from shop backends or profile-service's order intake.

The facts of an order (`OrderPlacement`, `OrderRefund`, `OrderCancellation`) carry the rules that
need no clock and no settings: money that is never negative (a refund gives back more than
nothing), every line priced in the currency of the order's total, and bounded sizes, so that an
order any CRM service accepts is one every other can store. The events add the CRM customer
id; the intake documents (`_order_intake`) add who the shop says the customer is. The rules that
depend on the deployment and the moment (accounting currency, time window) are `check_order`'s.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from crm_contracts._bounds import MAX_ORDER_AMOUNT, EventTime
from crm_contracts._payload import CustomerId, EventPayload, Money, Topic

MAX_ORDER_LINES = 1_000
MAX_LINE_QUANTITY = 1_000_000
MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 500
# CRM customer ids are UUIDs (36 characters), and the narrowest store of them downstream
# (scoring-service's ledger) holds no more: a longer id would be refused by one service and
# kept by another, so the order is refused where it enters instead.
MAX_CUSTOMER_ID_LENGTH = 36

OrderId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="The shop's order id.",
        examples=["ord-100234"],
    ),
]
OrderCustomerId = Annotated[CustomerId, Field(max_length=MAX_CUSTOMER_ID_LENGTH)]
ShortText = Annotated[str, Field(max_length=MAX_ID_LENGTH)]
LongText = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]


def _refuse_amount(money: Money, kind: str, message: str) -> ValidationError:
    # Raised from a validator, a ValidationError keeps its location under the field's own:
    # "total.amount", "items.3.unit_price.amount".
    error = PydanticCustomError(kind, message)
    return ValidationError.from_exception_data(
        "Money", [InitErrorDetails(type=error, loc=("amount",), input=format(money.amount, "f"))]
    )


def _within_order_bound(money: Money) -> Money:
    if money.amount >= MAX_ORDER_AMOUNT:
        raise _refuse_amount(
            money,
            "order_amount_too_large",
            f"an order's money amount must be below {format(MAX_ORDER_AMOUNT, 'f')}",
        )
    return money


def _not_negative(money: Money) -> Money:
    if money.amount < 0:
        raise _refuse_amount(money, "negative_amount", "money amount must not be negative")
    return _within_order_bound(money)


def _positive(money: Money) -> Money:
    if money.amount <= 0:
        raise _refuse_amount(money, "amount_not_positive", "money amount must be above zero")
    return _within_order_bound(money)


NonNegativeMoney = Annotated[Money, AfterValidator(_not_negative)]
"""Money of zero or more, below a trillion: a price or a total (free orders exist)."""

PositiveMoney = Annotated[Money, AfterValidator(_positive)]
"""Money above zero, below a trillion: a refund that gives something back."""


class OrderLine(BaseModel):
    """One line of an order: a product and how many of it were bought at which unit price."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sku: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="The product's stock keeping unit.",
        examples=["TEE-RED-M"],
    )
    quantity: int = Field(
        ge=1, le=MAX_LINE_QUANTITY, description="How many units were bought.", examples=[2]
    )
    unit_price: NonNegativeMoney = Field(
        description="The price of one unit, after line discounts, in the currency of the total."
    )
    name: LongText | None = Field(
        default=None, description="The product name.", examples=["Red tee, M"]
    )


class OrderPlacement(BaseModel):
    """What a placed order is, whoever names its customer: the `order.placed` facts."""

    order_id: OrderId
    placed_at: EventTime = Field(
        description="When the order was placed.", examples=["2025-03-14T09:26:53Z"]
    )
    total: NonNegativeMoney = Field(description="What the customer paid for the whole order.")
    items: list[OrderLine] = Field(
        default=[],
        max_length=MAX_ORDER_LINES,
        description="The order lines, when the shop sends them (at most 1,000).",
    )
    shop_id: ShortText | None = Field(
        default=None, description="The shop the order came from.", examples=["shop-eu"]
    )
    channel: ShortText | None = Field(
        default=None, description="Where the order was placed.", examples=["web", "app", "store"]
    )

    @model_validator(mode="after")
    def _lines_in_the_currency_of_the_total(self) -> OrderPlacement:
        # One order, one currency: a spend figure summed over lines in two currencies means nothing.
        currency = self.total.currency
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "currency_mismatch",
                    "line priced in {line}, but the order's total is in {total}",
                    {"line": line.unit_price.currency, "total": currency},
                ),
                loc=("items", number, "unit_price", "currency"),
                input=line.unit_price.currency,
            )
            for number, line in enumerate(self.items)
            if line.unit_price.currency != currency
        ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


class OrderRefund(BaseModel):
    """What a refund is, whoever names its customer: the `order.refunded` facts."""

    order_id: OrderId
    refund_id: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="The shop's refund id.",
        examples=["ref-5521"],
    )
    refunded_at: EventTime = Field(
        description="When the refund was made.", examples=["2025-03-20T15:02:11Z"]
    )
    amount: PositiveMoney = Field(description="How much was refunded (above zero).")
    reason: LongText | None = Field(
        default=None, description="Why, as the shop recorded it.", examples=["damaged"]
    )


class OrderCancellation(BaseModel):
    """What a cancellation is, whoever names its customer: the `order.cancelled` facts."""

    order_id: OrderId
    cancelled_at: EventTime = Field(
        description="When the order was cancelled.", examples=["2025-03-14T10:01:00Z"]
    )
    reason: LongText | None = Field(
        default=None, description="Why, as the shop recorded it.", examples=["changed_mind"]
    )


class OrderPlaced(EventPayload, OrderPlacement):
    """A customer placed an order: the purchase that drives scores, stages and outreach."""

    event_type: ClassVar[str] = "order.placed"
    topic: ClassVar[Topic] = Topic.ORDERS

    customer_id: OrderCustomerId


class OrderRefunded(EventPayload, OrderRefund):
    """Money from an order went back to the customer, in full or in part."""

    event_type: ClassVar[str] = "order.refunded"
    topic: ClassVar[Topic] = Topic.ORDERS

    customer_id: OrderCustomerId


class OrderCancelled(EventPayload, OrderCancellation):
    """An order was cancelled before it was fulfilled; it no longer counts as a purchase."""

    event_type: ClassVar[str] = "order.cancelled"
    topic: ClassVar[Topic] = Topic.ORDERS

    customer_id: OrderCustomerId


OrderFacts = OrderPlacement | OrderRefund | OrderCancellation
"""Any order fact: an `order.*` payload or an intake document."""
