"""The event contracts: every event the CRM services exchange over Kafka, written once.

An event is a CloudEvents 1.0 envelope (structured JSON) around a typed payload. Producers build
with `build_event` and `encode_event`; consumers call `decode_event` and dead-letter `InvalidEvent`.
The JSON Schemas and the AsyncAPI document in `contracts/` are generated from these models
(`make contracts`).
"""

from __future__ import annotations

from crm_contracts._activities import ActivityRecorded
from crm_contracts._bounds import (
    EARLIEST_SUPPORTED_TIME,
    ISO_4217_CURRENCIES,
    LATEST_SUPPORTED_TIME,
    MAX_INT64,
    MAX_MONEY_AMOUNT,
    MAX_ORDER_AMOUNT,
    CurrencyCode,
    EventTime,
    PositiveInt64,
    QueryTime,
    within_supported_time,
    without_nul,
)
from crm_contracts._customer_limits import (
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_JSON_BYTES,
    MAX_EMAIL_LENGTH,
    MAX_EXTERNAL_ID_LENGTH,
    MAX_EXTERNAL_IDS,
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    WORST_CASE_CUSTOMER_EVENT_BYTES,
    Attributes,
    Tags,
)
from crm_contracts._customers import (
    Channel,
    ConsentChanged,
    ConsentState,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerSnapshot,
    CustomerUpdated,
    Purpose,
    profiling_decision,
)
from crm_contracts._envelope import CloudEvent, build_event, decode_event, encode_event
from crm_contracts._errors import InvalidEvent
from crm_contracts._lifecycle import ChurnWarning, Stage, StageChanged
from crm_contracts._notifications import (
    Category,
    NotificationChannel,
    NotificationFailed,
    NotificationSent,
    NotificationSuppressed,
    SuppressionReason,
)
from crm_contracts._nul import NUL_MESSAGE, nul_location
from crm_contracts._order_intake import (
    CancelledOrder,
    CustomerReference,
    OrderIntake,
    OrderIntakeDocument,
    PlacedOrder,
    RefundedOrder,
    decode_order_intake,
)
from crm_contracts._order_policy import OrderPolicy, check_moment, check_order
from crm_contracts._orders import (
    OrderCancellation,
    OrderCancelled,
    OrderFacts,
    OrderLine,
    OrderPlaced,
    OrderPlacement,
    OrderRefund,
    OrderRefunded,
)
from crm_contracts._payload import EventPayload, Money, Topic, dead_letter_topic
from crm_contracts._registry import EVENT_TYPES, payload_model_for
from crm_contracts._scores import Grade, ScoreUpdated, SegmentChanged, ValueTier

__all__ = [
    "EARLIEST_SUPPORTED_TIME",
    "EVENT_TYPES",
    "ISO_4217_CURRENCIES",
    "LATEST_SUPPORTED_TIME",
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTES_JSON_BYTES",
    "MAX_EMAIL_LENGTH",
    "MAX_EXTERNAL_IDS",
    "MAX_EXTERNAL_ID_LENGTH",
    "MAX_INT64",
    "MAX_MONEY_AMOUNT",
    "MAX_NAME_LENGTH",
    "MAX_ORDER_AMOUNT",
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "NUL_MESSAGE",
    "WORST_CASE_CUSTOMER_EVENT_BYTES",
    "ActivityRecorded",
    "Attributes",
    "CancelledOrder",
    "Category",
    "Channel",
    "ChurnWarning",
    "CloudEvent",
    "ConsentChanged",
    "ConsentState",
    "CurrencyCode",
    "CustomerCreated",
    "CustomerErased",
    "CustomerMerged",
    "CustomerReference",
    "CustomerSnapshot",
    "CustomerUpdated",
    "EventPayload",
    "EventTime",
    "Grade",
    "InvalidEvent",
    "Money",
    "NotificationChannel",
    "NotificationFailed",
    "NotificationSent",
    "NotificationSuppressed",
    "OrderCancellation",
    "OrderCancelled",
    "OrderFacts",
    "OrderIntake",
    "OrderIntakeDocument",
    "OrderLine",
    "OrderPlaced",
    "OrderPlacement",
    "OrderPolicy",
    "OrderRefund",
    "OrderRefunded",
    "PlacedOrder",
    "PositiveInt64",
    "Purpose",
    "QueryTime",
    "RefundedOrder",
    "ScoreUpdated",
    "SegmentChanged",
    "Stage",
    "StageChanged",
    "SuppressionReason",
    "Tags",
    "Topic",
    "ValueTier",
    "build_event",
    "check_moment",
    "check_order",
    "dead_letter_topic",
    "decode_event",
    "decode_order_intake",
    "encode_event",
    "nul_location",
    "payload_model_for",
    "profiling_decision",
    "within_supported_time",
    "without_nul",
]
