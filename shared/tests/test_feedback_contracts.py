"""Activity and feedback contracts: one rule for HTTP bodies and Kafka events alike."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from crm_contracts import (
    ActivityFacts,
    FeedbackFacts,
    FeedbackKind,
    FeedbackRecorded,
    InvalidEvent,
    build_event,
    decode_event,
    encode_event,
    nps_group,
)
from crm_contracts.generate import CONTRACTS_DIR

NOW = datetime(2025, 3, 14, 9, 20, tzinfo=UTC)


def feedback_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "feedback_id": "fb-1",
        "kind": "complaint",
        "occurred_at": "2025-03-14T09:20:00Z",
        "about": "late_delivery",
    }
    return document | changes


BAD_FEEDBACK = [
    (feedback_document(kind="survey_answer"), "survey"),
    (feedback_document(kind="survey_answer", survey="nps", score=11), "score"),
    (feedback_document(kind="survey_answer", survey="nps", score=-1), "score"),
    (feedback_document(score=5), "score"),
    (feedback_document(kind="ticket_resolved"), "ticket_id"),
    (feedback_document(kind="compliment"), "kind"),
    (feedback_document(about="Has Spaces"), "about"),
    (feedback_document(feedback_id=""), "feedback_id"),
    (feedback_document(occurred_at="9999-12-31T23:59:59-23:59"), "occurred_at"),
]


@pytest.mark.parametrize(("document", "field"), BAD_FEEDBACK)
def test_bad_feedback_is_refused_in_a_request_body(document: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        FeedbackFacts.model_validate(document)
    assert any(error["loc"][0] == field for error in caught.value.errors())


@pytest.mark.parametrize(("document", "field"), BAD_FEEDBACK)
def test_the_same_feedback_is_refused_as_an_event(document: dict[str, Any], field: str) -> None:
    good = build_event(
        FeedbackRecorded(customer_id="c-1", **feedback_document()), source="/t", time=NOW
    )
    wire = json.loads(encode_event(good))
    wire["data"] = {"customer_id": "c-1", **document}
    with pytest.raises(InvalidEvent) as caught:
        decode_event(json.dumps(wire))
    assert field in (caught.value.field or "")


def test_a_survey_answer_and_a_ticket_round_trip() -> None:
    for facts in (
        feedback_document(kind="survey_answer", survey="csat", score=8, about=None),
        feedback_document(kind="ticket_opened", ticket_id="T-1"),
    ):
        payload = FeedbackRecorded(customer_id="c-1", **facts)
        event = build_event(payload, source="/t", time=NOW)
        assert decode_event(encode_event(event)) == event
    assert payload.kind is FeedbackKind.TICKET_OPENED


def test_activity_properties_are_bounded_scalars() -> None:
    base = {"activity_id": "a-1", "activity_type": "cart_abandoned", "occurred_at": NOW}
    ActivityFacts.model_validate(base | {"properties": {"items": 2, "value": "9.90"}})
    for bad in ({"properties": {"nested": {"a": 1}}}, {"activity_type": "Page View"}):
        with pytest.raises(ValidationError):
            ActivityFacts.model_validate(base | bad)


def test_a_customer_id_longer_than_any_store_holds_is_refused() -> None:
    with pytest.raises(ValidationError):
        FeedbackRecorded(customer_id="c" * 37, **feedback_document())


@pytest.mark.parametrize(
    ("score", "group"),
    [(0, "detractor"), (6, "detractor"), (7, "passive"), (8, "passive"), (9, "promoter")],
)
def test_nps_groups(score: int, group: str) -> None:
    assert nps_group(score) == group


def test_the_asyncapi_document_carries_the_feedback_event() -> None:
    document = json.loads((CONTRACTS_DIR / "asyncapi.json").read_text())
    messages = document["channels"]["activities"]["messages"]
    assert {"ActivityRecorded", "FeedbackRecorded"} <= set(messages)
