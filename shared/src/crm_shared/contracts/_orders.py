"""Order events (topic crm.orders), from shop backends or profile-service's HTTP order intake."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from crm_shared.contracts._bounds import EventTime
from crm_shared.contracts._payload import CustomerId, EventPayload, Money, Topic

OrderId = Annotated[
    str, Field(min_length=1, description="The shop's order id.", examples=["ord-100234"])
]


class OrderLine(BaseModel):
    """One line of an order: a product and how many of it were bought at which unit price."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sku: str = Field(
        min_length=1, description="The product's stock keeping unit.", examples=["TEE-RED-M"]
    )
    quantity: int = Field(ge=1, description="How many units were bought.", examples=[2])
    unit_price: Money = Field(description="The price of one unit, after line discounts.")
    name: str | None = Field(default=None, description="The product name.", examples=["Red tee, M"])


class OrderPlaced(EventPayload):
    """A customer placed an order: the purchase that drives scores, stages and outreach."""

    event_type: ClassVar[str] = "order.placed"
    topic: ClassVar[Topic] = Topic.ORDERS

    order_id: OrderId
    customer_id: CustomerId
    placed_at: EventTime = Field(
        description="When the order was placed.", examples=["2025-03-14T09:26:53Z"]
    )
    total: Money = Field(description="What the customer paid for the whole order.")
    items: list[OrderLine] = Field(
        default=[], description="The order lines, when the shop sends them."
    )
    shop_id: str | None = Field(
        default=None, description="The shop the order came from.", examples=["shop-eu"]
    )
    channel: str | None = Field(
        default=None, description="Where the order was placed.", examples=["web", "app", "store"]
    )


class OrderRefunded(EventPayload):
    """Money from an order went back to the customer, in full or in part."""

    event_type: ClassVar[str] = "order.refunded"
    topic: ClassVar[Topic] = Topic.ORDERS

    order_id: OrderId
    refund_id: str = Field(min_length=1, description="The shop's refund id.", examples=["ref-5521"])
    customer_id: CustomerId
    refunded_at: EventTime = Field(
        description="When the refund was made.", examples=["2025-03-20T15:02:11Z"]
    )
    amount: Money = Field(description="How much was refunded.")
    reason: str | None = Field(
        default=None, description="Why, as the shop recorded it.", examples=["damaged"]
    )


class OrderCancelled(EventPayload):
    """An order was cancelled before it was fulfilled; it no longer counts as a purchase."""

    event_type: ClassVar[str] = "order.cancelled"
    topic: ClassVar[Topic] = Topic.ORDERS

    order_id: OrderId
    customer_id: CustomerId
    cancelled_at: EventTime = Field(
        description="When the order was cancelled.", examples=["2025-03-14T10:01:00Z"]
    )
    reason: str | None = Field(
        default=None, description="Why, as the shop recorded it.", examples=["changed_mind"]
    )
