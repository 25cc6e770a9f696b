"""The sizes a customer profile may reach, so that every customer event can be published.

A Kafka broker refuses a record over its size limit (1 MiB by default, and aiokafka's
``max_request_size`` is the same), and a refused record stops the outbox behind it. Every
unbounded field of a profile was a way to make one: two 600 KB attribute values, 1.5 million
tags. These limits hold wherever a profile enters: the HTTP schemas, the import, and the
customer event contracts themselves, so a customer event read from Kafka is judged by the same
rule (an oversized one is dead-lettered, not applied).

Worst case (every field at its limit, every character the longest JSON escape, ``\\u0001``
at 6 bytes): a ``customer.updated`` event is under 150 KB, a seventh of the 1 MiB limit
(``WORST_CASE_CUSTOMER_EVENT_BYTES``; a test builds that event and measures it).
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError, to_json

MAX_CUSTOMER_ID_LENGTH = 200  # the outbox's message key column
MAX_EXTERNAL_IDS = 20
MAX_EXTERNAL_ID_LENGTH = 200
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
MAX_NAME_LENGTH = 200
MAX_TIME_ZONE_LENGTH = 64
MAX_LOCALE_LENGTH = 35
MAX_TAGS = 100
MAX_TAG_LENGTH = 64
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_LENGTH = 64
MAX_ATTRIBUTE_TEXT_LENGTH = 1_000
MAX_ATTRIBUTES_JSON_BYTES = 64 * 1024
# Integers beyond 2**53 lose their value in JSON readers that use doubles (JavaScript's).
MAX_ATTRIBUTE_INTEGER = 2**53 - 1
MAX_CONSENT_SOURCE_LENGTH = 100
MAX_CHANGED_FIELDS = 16  # a snapshot has 13 fields
MAX_FIELD_NAME_LENGTH = 32
WORST_CASE_CUSTOMER_EVENT_BYTES = 150_000

AttributeScalar = str | int | float | bool | None


def _attribute_value(value: Any) -> AttributeScalar:
    """One attribute value: a scalar (no nesting), short text, a JSON-safe number."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_ATTRIBUTE_INTEGER:
            raise PydanticCustomError(
                "attribute_integer_too_large",
                "an attribute integer must lie within ±{limit}",
                {"limit": MAX_ATTRIBUTE_INTEGER},
            )
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PydanticCustomError("attribute_not_finite", "an attribute number must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_TEXT_LENGTH:
            raise PydanticCustomError(
                "attribute_too_long",
                "an attribute text may have at most {limit} characters",
                {"limit": MAX_ATTRIBUTE_TEXT_LENGTH},
            )
        return value
    raise PydanticCustomError(
        "attribute_not_scalar",
        "an attribute value must be a string, number, boolean or null (no lists or objects)",
    )


def _within_json_budget(attributes: dict[str, AttributeScalar]) -> dict[str, AttributeScalar]:
    size = len(to_json(attributes))
    if size > MAX_ATTRIBUTES_JSON_BYTES:
        raise PydanticCustomError(
            "attributes_too_large",
            "the attributes take {size} bytes as JSON, more than the {limit} allowed",
            {"size": size, "limit": MAX_ATTRIBUTES_JSON_BYTES},
        )
    return attributes


AttributeKey = Annotated[str, Field(min_length=1, max_length=MAX_ATTRIBUTE_KEY_LENGTH)]
AttributeValue = Annotated[
    AttributeScalar,
    PlainValidator(_attribute_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_ATTRIBUTE_TEXT_LENGTH},
                {
                    "type": "integer",
                    "minimum": -MAX_ATTRIBUTE_INTEGER,
                    "maximum": MAX_ATTRIBUTE_INTEGER,
                },
                {"type": "number"},
                {"type": "boolean"},
                {"type": "null"},
            ]
        }
    ),
]
Attributes = Annotated[
    dict[AttributeKey, AttributeValue],
    Field(
        max_length=MAX_ATTRIBUTES,
        description=(
            f"Free scalar attributes: at most {MAX_ATTRIBUTES}, keys of at most "
            f"{MAX_ATTRIBUTE_KEY_LENGTH} characters, texts of at most "
            f"{MAX_ATTRIBUTE_TEXT_LENGTH}, {MAX_ATTRIBUTES_JSON_BYTES} bytes in all as JSON."
        ),
    ),
    AfterValidator(_within_json_budget),
]
"""A customer's attributes, bounded in count, key length, value size, nesting and total size."""

Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH)]
Tags = Annotated[list[Tag], Field(max_length=MAX_TAGS)]
"""A customer's tags: at most 100, each at most 64 characters."""

ExternalId = Annotated[str, Field(min_length=1, max_length=MAX_EXTERNAL_ID_LENGTH)]
PersonName = Annotated[str, Field(max_length=MAX_NAME_LENGTH)]
EmailText = Annotated[str, Field(max_length=MAX_EMAIL_LENGTH)]
