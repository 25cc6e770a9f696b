"""Event contracts: envelopes round-trip, bad events are refused clearly, docs stay generated."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from crm_contracts import (
    EVENT_TYPES,
    ActivityRecorded,
    Category,
    Channel,
    ChurnWarning,
    CloudEvent,
    ConsentChanged,
    ConsentState,
    CustomerCreated,
    CustomerErased,
    CustomerMerged,
    CustomerSnapshot,
    CustomerUpdated,
    EventPayload,
    FeedbackRecorded,
    Grade,
    InvalidEvent,
    Money,
    NotificationChannel,
    NotificationFailed,
    NotificationSent,
    NotificationSuppressed,
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    OrderRefunded,
    Purpose,
    ScoreUpdated,
    SegmentChanged,
    Stage,
    StageChanged,
    Topic,
    ValueTier,
    build_event,
    dead_letter_topic,
    decode_event,
    encode_event,
    payload_model_for,
)
from crm_contracts.generate import CONTRACTS_DIR, render_asyncapi, render_json_schemas

CUSTOMER_ID = "01932c4e-5f1a-7c3b-8d2e-9f0a1b2c3d4e"
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
SOURCE = "/crm/test"


# --- factories: one per event type, valid by default, any field overridable -------------------


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def order_placed(**overrides: Any) -> OrderPlaced:
    fields: dict[str, Any] = {
        "order_id": "ord-1",
        "customer_id": CUSTOMER_ID,
        "placed_at": NOW,
        "total": eur("25.00"),
        "items": [OrderLine(sku="TEE-RED-M", quantity=2, unit_price=eur("12.50"), name="Tee")],
        "shop_id": "shop-eu",
        "channel": "web",
    }
    return OrderPlaced(**(fields | overrides))


def order_refunded(**overrides: Any) -> OrderRefunded:
    fields: dict[str, Any] = {
        "order_id": "ord-1",
        "refund_id": "ref-1",
        "customer_id": CUSTOMER_ID,
        "refunded_at": NOW,
        "amount": eur("12.50"),
        "reason": "damaged",
    }
    return OrderRefunded(**(fields | overrides))


def order_cancelled(**overrides: Any) -> OrderCancelled:
    fields: dict[str, Any] = {"order_id": "ord-1", "customer_id": CUSTOMER_ID, "cancelled_at": NOW}
    return OrderCancelled(**(fields | overrides))


def consent(**overrides: Any) -> ConsentState:
    fields: dict[str, Any] = {
        "channel": Channel.EMAIL,
        "purpose": Purpose.MARKETING,
        "granted": True,
        "source": "signup_form",
        "changed_at": NOW,
    }
    return ConsentState(**(fields | overrides))


def snapshot(**overrides: Any) -> CustomerSnapshot:
    fields: dict[str, Any] = {
        "customer_id": CUSTOMER_ID,
        "external_ids": ["shop-eu:8812"],
        "email": "ada@example.com",
        "phone": "+4915112345678",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "time_zone": "Europe/Berlin",
        "locale": "de-DE",
        "tags": ["b2b"],
        "attributes": {"loyalty_card": True, "visits": 3},
        "consents": [consent()],
        "created_at": NOW - timedelta(days=30),
        "updated_at": NOW,
    }
    return CustomerSnapshot(**(fields | overrides))


def customer_created(**overrides: Any) -> CustomerCreated:
    return CustomerCreated(**({"customer": snapshot()} | overrides))


def customer_updated(**overrides: Any) -> CustomerUpdated:
    return CustomerUpdated(**({"customer": snapshot(), "changed_fields": ["email"]} | overrides))


def customer_merged(**overrides: Any) -> CustomerMerged:
    fields: dict[str, Any] = {
        "customer_id": CUSTOMER_ID,
        "merged_customer_id": "01932c4e-7777-7c3b-8d2e-9f0a1b2c3d4e",
        "merged_at": NOW,
    }
    return CustomerMerged(**(fields | overrides))


def customer_erased(**overrides: Any) -> CustomerErased:
    return CustomerErased(**({"customer_id": CUSTOMER_ID, "erased_at": NOW} | overrides))


def consent_changed(**overrides: Any) -> ConsentChanged:
    fields: dict[str, Any] = {"customer_id": CUSTOMER_ID, "consent": consent(granted=False)}
    return ConsentChanged(**(fields | overrides))


def activity_recorded(**overrides: Any) -> ActivityRecorded:
    fields: dict[str, Any] = {
        "customer_id": CUSTOMER_ID,
        "activity_id": "act-1",
        "activity_type": "page_view",
        "occurred_at": NOW,
        "properties": {"url": "/products/tee-red"},
    }
    return ActivityRecorded(**(fields | overrides))


def feedback_recorded(**overrides: Any) -> FeedbackRecorded:
    fields: dict[str, Any] = {
        "customer_id": CUSTOMER_ID,
        "feedback_id": "fb-1",
        "kind": "survey_answer",
        "occurred_at": NOW,
        "survey": "nps",
        "score": 4,
    }
    return FeedbackRecorded(**(fields | overrides))


def score_updated(**overrides: Any) -> ScoreUpdated:
    fields: dict[str, Any] = {
        "customer_id": CUSTOMER_ID,
        "as_of": NOW,
        "model_version": "clv-2025-03-01",
        "recency_score": 5,
        "frequency_score": 4,
        "monetary_score": 3,
        "rfm_segment": "champions",
        "order_count": 7,
        "first_purchase_at": NOW - timedelta(days=400),
        "last_purchase_at": NOW,
        "total_spend": eur("640.10"),
        "spend_12m": eur("310.00"),
        "average_order_value": eur("91.44"),
        "p_alive": 0.82,
        "expected_purchases_30d": 0.4,
        "expected_purchases_90d": 1.1,
        "expected_purchases_365d": 3.9,
        "churn_risk": 0.18,
        "expected_interpurchase_days": 41.5,
        "predicted_clv_12m": eur("355.20"),
        "historic_clv": eur("640.10"),
        "health_index": 76.0,
        "value_tier": ValueTier.GROWTH,
        "grade": Grade.HIGH,
        "cluster": "bargain_hunters",
    }
    return ScoreUpdated(**(fields | overrides))


def segment_changed(**overrides: Any) -> SegmentChanged:
    fields: dict[str, Any] = {
        "customer_id": CUSTOMER_ID,
        "as_of": NOW,
        "dimension": "rfm_segment",
        "previous": "loyal",
        "current": "champions",
    }
    return SegmentChanged(**(fields | overrides))


def stage_changed(**overrides: Any) -> StageChanged:
    fields: dict[str, Any] = {
        "customer_id": CUSTOMER_ID,
        "previous_stage": Stage.ACTIVE,
        "stage": Stage.LOYAL,
        "changed_at": NOW,
        "cause": "sweep",
        "reason": "5th order within 12 months",
    }
    return StageChanged(**(fields | overrides))


def churn_warning(**overrides: Any) -> ChurnWarning:
    fields: dict[str, Any] = {
        "warning_id": "warn-1",
        "customer_id": CUSTOMER_ID,
        "raised_at": NOW,
        "status": "open",
        "reasons": ["churn_risk_above_threshold"],
        "churn_risk": 0.71,
        "value_tier": ValueTier.STRATEGIC_PARTNER,
        "grade": Grade.VIP,
        "predicted_clv_12m": eur("1200.00"),
        "recommended_action": "account_manager_task",
    }
    return ChurnWarning(**(fields | overrides))


def notification_sent(**overrides: Any) -> NotificationSent:
    fields: dict[str, Any] = {
        "notification_id": "ntf-1",
        "customer_id": CUSTOMER_ID,
        "rule_id": "winback-vip",
        "template_id": "winback-offer-v2",
        "channel": NotificationChannel.EMAIL,
        "category": Category.MARKETING,
        "trigger_event_id": "evt-1",
        "sent_at": NOW,
    }
    return NotificationSent(**(fields | overrides))


def notification_failed(**overrides: Any) -> NotificationFailed:
    fields: dict[str, Any] = {
        "notification_id": "ntf-1",
        "customer_id": CUSTOMER_ID,
        "channel": NotificationChannel.SMS,
        "category": Category.SERVICE,
        "failed_at": NOW,
        "attempts": 3,
        "permanent": True,
        "error": "gateway rejected the number",
    }
    return NotificationFailed(**(fields | overrides))


def notification_suppressed(**overrides: Any) -> NotificationSuppressed:
    fields: dict[str, Any] = {
        "notification_id": "ntf-1",
        "customer_id": CUSTOMER_ID,
        "rule_id": "winback-vip",
        "channel": None,
        "category": Category.MARKETING,
        "suppressed_at": NOW,
        "reason": "no_contact",
        "detail": "no email address or phone number",
    }
    return NotificationSuppressed(**(fields | overrides))


PAYLOAD_FACTORIES: dict[type[EventPayload], Callable[..., EventPayload]] = {
    OrderPlaced: order_placed,
    OrderRefunded: order_refunded,
    OrderCancelled: order_cancelled,
    CustomerCreated: customer_created,
    CustomerUpdated: customer_updated,
    CustomerMerged: customer_merged,
    CustomerErased: customer_erased,
    ConsentChanged: consent_changed,
    ActivityRecorded: activity_recorded,
    FeedbackRecorded: feedback_recorded,
    ScoreUpdated: score_updated,
    SegmentChanged: segment_changed,
    StageChanged: stage_changed,
    ChurnWarning: churn_warning,
    NotificationSent: notification_sent,
    NotificationFailed: notification_failed,
    NotificationSuppressed: notification_suppressed,
}


def wire(payload: EventPayload | None = None) -> dict[str, Any]:
    """An encoded event as a JSON object, for tests that break one part of it."""
    event = build_event(payload or order_placed(), source=SOURCE, time=NOW)
    decoded: dict[str, Any] = json.loads(encode_event(event))
    return decoded


def refusal(document: object) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(json.dumps(document))
    return caught.value


def all_subclasses(cls: type[EventPayload]) -> set[type[EventPayload]]:
    """Every payload class the contracts package defines (tests may derive their own)."""
    direct = set(cls.__subclasses__())
    found = direct.union(*(all_subclasses(sub) for sub in direct))
    return {sub for sub in found if sub.__module__.startswith("crm_contracts")}


# --- round trip and the envelope ---------------------------------------------------------------


@pytest.mark.parametrize(
    "factory", PAYLOAD_FACTORIES.values(), ids=[m.event_type for m in PAYLOAD_FACTORIES]
)
def test_every_event_type_round_trips_through_json(factory: Callable[..., EventPayload]) -> None:
    event = build_event(factory(), source=SOURCE, time=NOW)

    decoded = decode_event(encode_event(event))

    assert decoded == event
    assert type(decoded.data) is type(event.data)


def test_build_event_takes_type_and_subject_from_the_payload() -> None:
    payload = customer_created()

    event = build_event(payload, source=SOURCE, time=NOW, event_id="evt-42")

    assert (event.id, event.type, event.subject) == ("evt-42", "customer.created", CUSTOMER_ID)
    assert (event.specversion, event.datacontenttype) == ("1.0", "application/json")


def test_build_event_gives_each_event_a_new_uuid7_id() -> None:
    first, second = (build_event(order_placed(), source=SOURCE, time=NOW) for _ in range(2))

    assert first.id != second.id
    assert first.id[14] == "7"  # the UUID version digit


def test_time_is_written_with_its_offset() -> None:
    berlin = timezone(timedelta(hours=1))
    event = build_event(
        order_placed(), source=SOURCE, time=datetime(2025, 3, 14, 10, tzinfo=berlin)
    )

    assert json.loads(encode_event(event))["time"] == "2025-03-14T10:00:00+01:00"
    assert wire()["time"] == "2025-03-14T09:30:00Z"


def test_unset_dataschema_is_omitted_but_a_set_one_is_kept() -> None:
    assert "dataschema" not in wire()

    document = wire() | {"dataschema": "https://crm.example/schemas/order.placed.json"}
    assert decode_event(json.dumps(document)).dataschema == document["dataschema"]


def test_payload_nulls_stay_on_the_wire() -> None:
    assert wire(order_cancelled())["data"]["reason"] is None


def test_money_is_a_decimal_string_on_the_wire() -> None:
    data = wire(order_placed(total=Money(amount=Decimal("1E+3"), currency="EUR")))["data"]

    assert data["total"] == {"amount": "1000", "currency": "EUR"}
    assert data["items"][0]["unit_price"]["amount"] == "12.50"


def test_money_accepts_decimal_strings_and_integers_and_keeps_them_exact() -> None:
    assert Money.model_validate({"amount": "0.10", "currency": "EUR"}).amount == Decimal("0.10")
    assert Money.model_validate_json('{"amount": 7, "currency": "USD"}').amount == Decimal(7)


@pytest.mark.parametrize("amount", [12.5, "1e3", "NaN", "Infinity", " 12.50", True])
def test_money_refuses_floats_and_non_decimal_strings(amount: object) -> None:
    with pytest.raises(ValidationError, match="decimal string"):
        Money.model_validate({"amount": amount, "currency": "EUR"})


@pytest.mark.parametrize("amount", [Decimal("NaN"), Decimal("Infinity")])
def test_money_refuses_non_finite_decimals(amount: Decimal) -> None:
    with pytest.raises(ValidationError, match="finite"):
        Money(amount=amount, currency="EUR")


def test_money_currency_is_an_iso_4217_code() -> None:
    with pytest.raises(ValidationError, match="currency"):
        Money(amount=Decimal(1), currency="eur")


def test_unknown_payload_fields_are_ignored_for_forward_compatibility() -> None:
    document = wire()
    document["data"]["loyalty_points"] = 120

    assert decode_event(json.dumps(document)).data == order_placed()


def test_events_and_payloads_are_immutable() -> None:
    event = build_event(order_placed(), source=SOURCE, time=NOW)

    with pytest.raises(ValidationError):
        event.subject = "someone-else"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        event.data.customer_id = "someone-else"  # type: ignore[attr-defined]


# --- refusals ----------------------------------------------------------------------------------


def test_decode_rejects_invalid_json() -> None:
    with pytest.raises(InvalidEvent, match="not valid JSON") as caught:
        decode_event(b"{not json")
    assert caught.value.field is None


def test_decode_rejects_json_that_is_not_an_object() -> None:
    assert refusal([wire()]).reason == "not a JSON object"


def test_decode_rejects_unknown_type() -> None:
    invalid = refusal(wire() | {"type": "order.teleported"})

    assert invalid.field == "type"
    assert "unknown event type 'order.teleported'" in invalid.reason


def test_decode_rejects_other_specversions() -> None:
    assert refusal(wire() | {"specversion": "0.3"}).field == "specversion"


def test_decode_rejects_missing_field_with_a_reason_naming_the_field() -> None:
    document = wire()
    del document["data"]["order_id"]

    invalid = refusal(document)

    assert invalid.field == "data.order_id"
    assert invalid.reason.startswith("data.order_id: ")


def test_decode_rejects_missing_envelope_attribute() -> None:
    document = wire()
    del document["id"]

    assert refusal(document).field == "id"


def test_decode_rejects_a_float_amount_naming_the_money_field() -> None:
    document = wire()
    document["data"]["total"]["amount"] = 25.0

    invalid = refusal(document)

    assert invalid.field == "data.total.amount"
    assert "decimal string" in invalid.reason


def test_decode_rejects_subject_mismatch() -> None:
    invalid = refusal(wire() | {"subject": "someone-else"})

    assert invalid.field == "subject"
    assert "customer id" in invalid.reason


def test_decode_rejects_naive_time() -> None:
    assert refusal(wire() | {"time": "2025-03-14T09:30:00"}).field == "time"


def test_decode_rejects_naive_payload_time() -> None:
    document = wire()
    document["data"]["placed_at"] = "2025-03-14T09:30:00"

    assert refusal(document).field == "data.placed_at"


def test_building_an_event_with_a_naive_time_fails() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        build_event(order_placed(), source=SOURCE, time=datetime(2025, 3, 14, 9, 30))


def test_an_envelope_whose_type_does_not_match_its_payload_is_refused() -> None:
    with pytest.raises(ValidationError, match="OrderPlaced"):
        CloudEvent(
            id="evt-1",
            source=SOURCE,
            type="order.placed",
            subject=CUSTOMER_ID,
            time=NOW,
            data=order_cancelled(),
        )


def test_payload_constraints_are_enforced() -> None:
    with pytest.raises(ValidationError, match="recency_score"):
        score_updated(recency_score=6)
    with pytest.raises(ValidationError, match="p_alive"):
        score_updated(p_alive=float("nan"))
    with pytest.raises(ValidationError, match="reasons"):
        churn_warning(reasons=[])
    with pytest.raises(ValidationError, match="phone"):
        snapshot(phone="0151 123")


# --- registry and topics -----------------------------------------------------------------------


def test_registry_covers_every_payload_class() -> None:
    assert set(EVENT_TYPES.values()) == all_subclasses(EventPayload)
    assert set(PAYLOAD_FACTORIES) == set(EVENT_TYPES.values())
    for event_type, model in EVENT_TYPES.items():
        assert model.event_type == event_type
        assert payload_model_for(event_type) is model
        assert model.topic in Topic
        assert model.__doc__


def test_every_payload_names_its_customer_as_subject() -> None:
    for factory in PAYLOAD_FACTORIES.values():
        assert factory().subject == CUSTOMER_ID


def test_payload_model_for_an_unknown_type_raises_invalid_event() -> None:
    with pytest.raises(InvalidEvent) as caught:
        payload_model_for("order.teleported")
    assert caught.value.field == "type"


def test_dead_letter_topic_sits_beside_the_consumer_input() -> None:
    assert dead_letter_topic(Topic.ORDERS, "scoring-service") == "crm.orders.scoring-service.dlq"


# --- generated documents -----------------------------------------------------------------------


def test_checked_in_schemas_and_asyncapi_are_up_to_date() -> None:
    schemas_dir = CONTRACTS_DIR / "schemas"
    expected = render_json_schemas()
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in schemas_dir.glob("*.json")}
    asyncapi = CONTRACTS_DIR / "asyncapi.json"
    hint = "the checked-in contracts are stale: run `make contracts` and commit the result"

    assert on_disk == expected, hint
    assert asyncapi.read_text(encoding="utf-8") == render_asyncapi(), hint


def test_one_json_schema_per_event_type_with_the_type_pinned() -> None:
    schemas = {name: json.loads(text) for name, text in render_json_schemas().items()}

    assert set(schemas) == {f"{event_type}.json" for event_type in EVENT_TYPES}
    for name, schema in schemas.items():
        assert schema["properties"]["type"]["const"] == name.removesuffix(".json")
        assert "specversion" in schema["required"]


def test_asyncapi_has_a_channel_per_topic_and_a_message_per_event_type() -> None:
    document = json.loads(render_asyncapi())

    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "CRM event contracts"
    assert {channel["address"] for channel in document["channels"].values()} == set(Topic)
    names = {message["name"] for message in document["components"]["messages"].values()}
    intake = {"intake.order.placed", "intake.order.refunded", "intake.order.cancelled"}
    assert names == set(EVENT_TYPES) | intake
    (intake_channel,) = [
        channel
        for channel in document["channels"].values()
        if channel["address"] == Topic.ORDER_INTAKE
    ]
    assert set(intake_channel["messages"]) == {"PlacedOrder", "RefundedOrder", "CancelledOrder"}
