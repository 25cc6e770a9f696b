"""The CloudEvents 1.0 envelope (structured JSON mode) and how events go to and from bytes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializationInfo,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from crm_shared._ids import new_id
from crm_shared.contracts._bounds import EventTime
from crm_shared.contracts._errors import InvalidEvent
from crm_shared.contracts._nul import NUL_MESSAGE, nul_location
from crm_shared.contracts._payload import EventPayload
from crm_shared.contracts._registry import EVENT_TYPES


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
        fields = _ONE_PASS.validate_json(raw)
    except ValidationError:
        fields = None
    if fields is not None and fields["subject"] == fields["data"].subject:
        # Every field was validated in that one pass (the payload too, straight from JSON):
        # assemble the event without validating it again. Unset fields keep their defaults
        # and stay unset, as after `model_validate_json`.
        return CloudEvent.model_construct(**fields)
    # Refused: the envelope model's own validation says why, with the field at fault.
    try:
        return CloudEvent.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise InvalidEvent(_describe(errors), field=_field_of(errors[0])) from None


def _one_pass_envelope(event_type: str, payload: type[EventPayload]) -> Any:
    """CloudEvent's fields as a TypedDict whose `type` is `event_type` and `data` its payload.

    The fields and their constraints are CloudEvent's own (`Annotated[..., FieldInfo]`), so the
    two cannot drift. A field with a default may be absent and then stays absent (its
    constraints only, not its default), so the event built from it has the same unset fields.
    """
    fields: dict[str, Any] = {}
    for name, info in CloudEvent.model_fields.items():
        if name == "type":
            fields[name] = Literal[event_type]
        elif name == "data":
            fields[name] = payload
        elif info.is_required():
            fields[name] = Annotated[info.annotation, info]
        else:
            constrained = (
                Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            )
            fields[name] = NotRequired[constrained]
    return TypedDict(f"{payload.__name__}Envelope", fields)  # type: ignore[operator]


# One validator for every known type, picked by the document's `type` (a tagged union): the
# payload is validated from JSON in the same pass as the envelope. CloudEvent itself parses
# `data` to Python objects first and then validates them again with the payload model.
_ONE_PASS: TypeAdapter[dict[str, Any]] = TypeAdapter(
    Annotated[  # type: ignore[arg-type]
        Union[  # noqa: UP007 - a runtime-built union of the envelopes, one per event type
            tuple(
                Annotated[_one_pass_envelope(event_type, payload), Tag(event_type)]
                for event_type, payload in EVENT_TYPES.items()
            )
        ],
        Discriminator("type"),
    ]
)


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
