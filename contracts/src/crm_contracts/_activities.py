"""Activity events (topic crm.activities): what a customer did besides buying."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from crm_contracts._bounds import EventTime
from crm_contracts._payload import CustomerId, EventPayload, Topic


class ActivityRecorded(EventPayload):
    """A customer did something worth knowing: viewed a page, opened an email, logged in."""

    event_type: ClassVar[str] = "activity.recorded"
    topic: ClassVar[Topic] = Topic.ACTIVITIES

    customer_id: CustomerId
    activity_id: str = Field(
        min_length=1,
        description="Unique per activity, so a repeated report counts once.",
        examples=["act-7f3a9c"],
    )
    activity_type: str = Field(
        min_length=1,
        description="What the customer did.",
        examples=["page_view", "email_open", "email_click", "login", "cart_add"],
    )
    occurred_at: EventTime = Field(
        description="When the customer did it.", examples=["2025-03-14T09:20:00Z"]
    )
    properties: dict[str, Any] = Field(
        default={},
        description="Details that depend on the activity type.",
        examples=[{"url": "/products/tee-red", "sku": "TEE-RED-M"}],
    )
