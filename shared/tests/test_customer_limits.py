"""Customer contracts are bounded, so the largest customer event still fits a Kafka record."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from crm_contracts import (
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_JSON_BYTES,
    MAX_EMAIL_LENGTH,
    MAX_EXTERNAL_ID_LENGTH,
    MAX_EXTERNAL_IDS,
    MAX_NAME_LENGTH,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    WORST_CASE_CUSTOMER_EVENT_BYTES,
    Channel,
    ConsentState,
    CustomerSnapshot,
    CustomerUpdated,
    InvalidEvent,
    Purpose,
    build_event,
    decode_event,
    encode_event,
)
from crm_contracts._customer_limits import (
    MAX_ATTRIBUTE_KEY_LENGTH,
    MAX_ATTRIBUTE_TEXT_LENGTH,
    MAX_CHANGED_FIELDS,
    MAX_CONSENT_SOURCE_LENGTH,
    MAX_CUSTOMER_ID_LENGTH,
    MAX_FIELD_NAME_LENGTH,
    MAX_LOCALE_LENGTH,
    MAX_TIME_ZONE_LENGTH,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
PRODUCER_LIMIT = 1024 * 1024  # aiokafka's max_request_size and Kafka's message.max.bytes
# The character with the longest JSON form: a control character, written \u0001 (6 bytes).
WORST = "\x01"


def a_snapshot(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "customer_id": "c-1",
        "created_at": NOW.isoformat(),
        "updated_at": NOW.isoformat(),
    }
    return fields | overrides


def attributes_at_the_byte_budget() -> dict[str, str]:
    """As many attributes as fit the JSON budget, each key and text made of 6-byte escapes."""
    attributes: dict[str, str] = {}
    for n in range(MAX_ATTRIBUTES):
        key = f"{n:03d}" + WORST * (MAX_ATTRIBUTE_KEY_LENGTH - 3)
        candidate = {**attributes, key: WORST * MAX_ATTRIBUTE_TEXT_LENGTH}
        if len(json.dumps(candidate, separators=(",", ":"))) > MAX_ATTRIBUTES_JSON_BYTES:
            room = MAX_ATTRIBUTES_JSON_BYTES - len(json.dumps(attributes, separators=(",", ":")))
            filler = max(0, (room - 6 * len(key) - 10) // 6)
            attributes[key] = WORST * filler
            break
        attributes = candidate
    return attributes


def test_the_largest_customer_event_fits_well_under_the_producer_limit() -> None:
    consents = [
        ConsentState(
            channel=channel,
            purpose=purpose,
            granted=True,
            source=WORST * MAX_CONSENT_SOURCE_LENGTH,
            changed_at=NOW,
        )
        for channel in Channel
        for purpose in Purpose
    ]
    snapshot = CustomerSnapshot(
        customer_id="c" * MAX_CUSTOMER_ID_LENGTH,
        external_ids=[f"{n:02d}" + WORST * (MAX_EXTERNAL_ID_LENGTH - 2) for n in range(20)],
        email=WORST * MAX_EMAIL_LENGTH,
        phone="+" + "9" * 15,
        first_name=WORST * MAX_NAME_LENGTH,
        last_name=WORST * MAX_NAME_LENGTH,
        time_zone=WORST * MAX_TIME_ZONE_LENGTH,
        locale=WORST * MAX_LOCALE_LENGTH,
        tags=[f"{n:02d}" + WORST * (MAX_TAG_LENGTH - 2) for n in range(MAX_TAGS)],
        attributes=attributes_at_the_byte_budget(),
        consents=consents,
        created_at=NOW,
        updated_at=NOW,
    )
    changed = [WORST * MAX_FIELD_NAME_LENGTH] * MAX_CHANGED_FIELDS
    event = build_event(
        CustomerUpdated(customer=snapshot, changed_fields=changed),
        source="/crm/profile-service",
        time=NOW,
    )
    size = len(encode_event(event)) + MAX_CUSTOMER_ID_LENGTH  # the key travels too
    print(f"\nworst-case customer.updated: {size} bytes")
    assert size <= WORST_CASE_CUSTOMER_EVENT_BYTES < PRODUCER_LIMIT // 4
    assert decode_event(encode_event(event)) == event


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tags": ["t"] * (MAX_TAGS + 1)}, "tags"),
        ({"tags": ["t" * (MAX_TAG_LENGTH + 1)]}, "tags.0"),
        ({"attributes": {f"k{n}": n for n in range(MAX_ATTRIBUTES + 1)}}, "attributes"),
        ({"attributes": {"k" * (MAX_ATTRIBUTE_KEY_LENGTH + 1): 1}}, "attributes"),
        ({"attributes": {"note": "x" * (MAX_ATTRIBUTE_TEXT_LENGTH + 1)}}, "attributes.note"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes.nested"),
        ({"attributes": {"list": [1, 2]}}, "attributes.list"),
        ({"attributes": {"big": 2**60}}, "attributes.big"),
        (
            {"attributes": {f"k{n}": "x" * MAX_ATTRIBUTE_TEXT_LENGTH for n in range(70)}},
            "attributes",
        ),
        ({"external_ids": [f"x{n}" for n in range(MAX_EXTERNAL_IDS + 1)]}, "external_ids"),
        ({"external_ids": ["x" * (MAX_EXTERNAL_ID_LENGTH + 1)]}, "external_ids.0"),
        ({"first_name": "A" * (MAX_NAME_LENGTH + 1)}, "first_name"),
        ({"email": "a" * (MAX_EMAIL_LENGTH + 1)}, "email"),
        ({"customer_id": "c" * (MAX_CUSTOMER_ID_LENGTH + 1)}, "customer_id"),
    ],
)
def test_a_snapshot_over_a_limit_is_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        CustomerSnapshot.model_validate(a_snapshot(**change))
    located = [".".join(str(part) for part in error["loc"]) for error in refused.value.errors()]
    assert any(place.startswith(field) for place in located), located


def test_scalar_attributes_within_the_limits_are_kept_as_given() -> None:
    attributes = {"card": True, "visits": 2**53 - 1, "ratio": 0.5, "store": "Mitte", "gone": None}
    snapshot = CustomerSnapshot.model_validate(a_snapshot(attributes=attributes))
    assert snapshot.attributes == attributes


def test_an_oversized_customer_event_from_kafka_is_refused_like_one_from_http() -> None:
    small = build_event(
        CustomerUpdated(
            customer=CustomerSnapshot.model_validate(a_snapshot()), changed_fields=["tags"]
        ),
        source="/shop",
        time=NOW,
    )
    wire = json.loads(encode_event(small))
    wire["data"]["customer"]["tags"] = [f"t{n}" for n in range(1_500)]
    with pytest.raises(InvalidEvent) as refused:
        decode_event(json.dumps(wire))
    assert "tags" in str(refused.value)
