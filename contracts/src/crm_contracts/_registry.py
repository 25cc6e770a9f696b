"""Which payload model each CloudEvents `type` carries."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from crm_contracts._activities import ActivityRecorded, FeedbackRecorded
from crm_contracts._customers import (
    ConsentChanged,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerUpdated,
)
from crm_contracts._errors import InvalidEvent
from crm_contracts._lifecycle import ChurnWarning, StageChanged
from crm_contracts._notifications import (
    NotificationFailed,
    NotificationSent,
    NotificationSuppressed,
)
from crm_contracts._orders import OrderCancelled, OrderPlaced, OrderRefunded
from crm_contracts._payload import EventPayload
from crm_contracts._scores import ScoreUpdated, SegmentChanged

_PAYLOAD_MODELS: tuple[type[EventPayload], ...] = (
    OrderPlaced,
    OrderRefunded,
    OrderCancelled,
    CustomerCreated,
    CustomerUpdated,
    CustomerMerged,
    CustomerErased,
    ConsentChanged,
    ActivityRecorded,
    FeedbackRecorded,
    ScoreUpdated,
    SegmentChanged,
    StageChanged,
    ChurnWarning,
    NotificationSent,
    NotificationFailed,
    NotificationSuppressed,
)

EVENT_TYPES: Mapping[str, type[EventPayload]] = MappingProxyType(
    {model.event_type: model for model in _PAYLOAD_MODELS}
)
if len(EVENT_TYPES) != len(_PAYLOAD_MODELS):  # pragma: no cover - caught by the first import
    raise RuntimeError("two payload models claim the same event type")


def payload_model_for(event_type: str) -> type[EventPayload]:
    """Return the payload model of `event_type`; raise `InvalidEvent` for a type nobody defined."""
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise InvalidEvent(f"unknown event type {event_type!r}", field="type") from None
