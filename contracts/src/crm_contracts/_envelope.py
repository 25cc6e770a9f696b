"""The CloudEvents 1.0 envelope (structured JSON mode) and how events go to and from bytes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from crm_contracts._bounds import EventTime
from crm_contracts._errors import InvalidEvent
from crm_contracts._ids import new_id
from crm_contracts._nul import NUL_MESSAGE, nul_location
from crm_contracts._payload import EventPayload
from crm_contracts._registry import EVENT_TYPES


class CloudEvent(BaseModel):
    """One event as it travels on Kafka: CloudEvents 1.0 attributes around a typed payload.

    Build one with `build_event` and read one with `decode_event`. Validating a CloudEvent from a
    dict or JSON also works: `data` is validated with the payload model registered for `type`.
    """

    # Unknown envelope attributes (CloudEvents extensions such as `traceparent`) are ignored.
    # `specversion` has a default for building events, but CloudEvents requires it on the wire.
    model_config = ConfigDict(
        frozen=True, extra="ignore", json_schema_extra=lambda schema: _require_specversion(schema)
    )

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(
        min_length=1,
        description="Unique per event (a UUIDv7 from CRM services); consumers de-duplicate on it.",
        examples=["01932c4f-0a1b-7c3b-8d2e-9f0a1b2c3d4e"],
    )
    source: str = Field(
        min_length=1,
        description="The service or system that published the event.",
        examples=["/crm/profile-service"],
    )
    type: str = Field(description="The event type; it decides the shape of `data`.")
    subject: str = Field(
        min_length=1,
        description="The customer id the event is about; also the Kafka message key.",
        examples=["01932c4e-5f1a-7c3b-8d2e-9f0a1b2c3d4e"],
    )
    time: EventTime = Field(
        description="When the fact happened, ISO 8601 with offset.",
        examples=["2025-03-14T09:26:53Z"],
    )
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = Field(default=None, description="Omitted from the JSON when unset.")
    # SerializeAsAny: dump the payload with its own model, not with the EventPayload base.
    data: SerializeAsAny[EventPayload]

    @field_validator("type")
    @classmethod
    def _known_type(cls, event_type: str) -> str:
        if event_type not in EVENT_TYPES:
            raise PydanticCustomError(
                "unknown_event_type", "unknown event type '{type}'", {"type": event_type}
            )
        return event_type

    @field_validator("data", mode="before")
    @classmethod
    def _payload_of_type(cls, data: Any, info: ValidationInfo) -> Any:
        event_type = info.data.get("type")
        if event_type is None:  # `type` itself is invalid and already reported
            return data
        # Nested errors keep their location: "data.total.amount", not just "data".
        return EVENT_TYPES[event_type].model_validate(data)

    @model_validator(mode="after")
    def _subject_is_the_customer(self) -> CloudEvent:
        if self.subject != self.data.subject:
            error = PydanticCustomError(
                "subject_mismatch",
                "subject '{subject}' is not the payload's customer id '{customer_id}'",
                {"subject": self.subject, "customer_id": self.data.subject},
            )
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=error, loc=("subject",), input=self.subject)],
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_unset_dataschema(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if dumped.get("dataschema") is None:
            dumped.pop("dataschema", None)
        return dumped


def _require_specversion(schema: dict[str, Any]) -> None:
    required = schema.setdefault("required", [])
    if "specversion" not in required:
        required.insert(0, "specversion")


def build_event(
    data: EventPayload, *, source: str, time: datetime, event_id: str | None = None
) -> CloudEvent:
    """Wrap `data` in an envelope; type and subject come from the payload, the id is a new UUIDv7.

    `time` is required (no hidden clock): pass the moment the fact happened, timezone-aware.
    """
    return CloudEvent(
        id=event_id if event_id is not None else new_id(),
        source=source,
        type=data.event_type,
        subject=data.subject,
        time=time,
        data=data,
    )


def encode_event(event: CloudEvent) -> bytes:
    """Return `event` as compact JSON bytes, ready to be the Kafka message value."""
    return event.model_dump_json(by_alias=True).encode()


def decode_event(raw: bytes | str) -> CloudEvent:
    """Parse a Kafka message value into a CloudEvent whose `data` is its typed payload model.

    Raise `InvalidEvent` when the bytes are not a valid event of a known type, or when any
    string in them holds U+0000 (which PostgreSQL cannot store: dead-letter it, not fail later).
    """
    _refuse_nul(raw)
    try:
        return CloudEvent.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise InvalidEvent(_describe(errors), field=_field_of(errors[0])) from None


def _refuse_nul(raw: bytes | str) -> None:
    # A raw NUL is invalid JSON and refused by the parser; only the escape needs looking for.
    # The quick test also matches an escaped backslash before "u0000", so parse to be sure.
    holds_escape = b"\\u0000" in raw if isinstance(raw, bytes) else "\\u0000" in raw
    if not holds_escape:
        return
    try:
        location = nul_location(json.loads(raw))
    except (ValueError, RecursionError):
        return  # not JSON: validation says so
    if location is not None:
        field = ".".join(location) or None
        raise InvalidEvent(f"{field}: {NUL_MESSAGE}" if field else NUL_MESSAGE, field=field)


def _field_of(error: ErrorDetails) -> str | None:
    return ".".join(str(part) for part in error["loc"]) or None


def _describe(errors: list[ErrorDetails]) -> str:
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"not valid JSON: {first.get('ctx', {}).get('error', first['msg'])}"
    if first["type"] == "model_type" and not first["loc"]:
        return "not a JSON object"
    described = [
        f"{field}: {error['msg']}" if (field := _field_of(error)) else error["msg"]
        for error in errors
    ]
    return "; ".join(described)
