"""Consumed orders are judged at their record's timestamp, so every reader judges them alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiokafka import ConsumerRecord

from crm_contracts import (
    ActivityRecorded,
    InvalidEvent,
    Money,
    OrderPlaced,
    OrderPolicy,
    build_event,
    encode_event,
)
from crm_shared import cloud_event_decoder, judgement_time

STAMPED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
POLICY = OrderPolicy(currency="USD", max_future_skew=timedelta(minutes=5))


def a_record(value: bytes, stamped: datetime | None = STAMPED) -> ConsumerRecord[bytes, bytes]:
    timestamp = -1 if stamped is None else int(stamped.timestamp() * 1000)
    return ConsumerRecord(
        topic="crm.orders",
        partition=0,
        offset=0,
        timestamp=timestamp,
        timestamp_type=0,
        key=b"c-1",
        value=value,
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=len(value),
        headers=[],
    )


def an_order(placed_at: datetime, currency: str = "USD") -> bytes:
    order = OrderPlaced(
        order_id="o-1",
        customer_id="c-1",
        placed_at=placed_at,
        total=Money(amount=Decimal("10.00"), currency=currency),
    )
    return encode_event(build_event(order, source="/shop", time=placed_at))


def decode_read_at(value: bytes, wall_clock: datetime, stamped: datetime | None = STAMPED) -> str:
    """Decode as a consumer reading at `wall_clock` would; the field refused, or "" if none."""
    decode = cloud_event_decoder(POLICY, clock=lambda: wall_clock)
    try:
        decode(a_record(value, stamped))
    except InvalidEvent as refusal:
        return refusal.field or ""
    return ""


def test_an_order_is_judged_at_its_records_timestamp_however_late_it_is_read() -> None:
    # An hour after the record was written: too far ahead then, however it looks later.
    ahead = an_order(STAMPED + timedelta(hours=1))
    for read_after in (timedelta(0), timedelta(hours=2), timedelta(days=30)):
        assert decode_read_at(ahead, STAMPED + read_after) == "data.placed_at"
    current = an_order(STAMPED - timedelta(minutes=1))
    for read_after in (timedelta(0), timedelta(days=30)):
        assert decode_read_at(current, STAMPED + read_after) == ""


def test_a_foreign_currency_is_refused_naming_the_field_on_the_wire() -> None:
    euros = an_order(STAMPED, currency="EUR")
    assert decode_read_at(euros, STAMPED) == "data.total.currency"


def test_other_events_pass_without_the_order_policy() -> None:
    activity = ActivityRecorded(
        customer_id="c-1",
        activity_id="a-1",
        activity_type="page_view",
        occurred_at=STAMPED + timedelta(days=3),
    )
    value = encode_event(build_event(activity, source="/web", time=STAMPED + timedelta(days=3)))
    assert decode_read_at(value, STAMPED) == ""


def test_without_a_record_timestamp_the_wall_clock_judges() -> None:
    wall_clock = STAMPED + timedelta(days=1)
    assert judgement_time(a_record(b"", None), POLICY, wall_clock=wall_clock) == wall_clock


@pytest.mark.parametrize("ahead", [timedelta(days=1), timedelta(days=365 * 100)])
def test_a_record_timestamp_far_ahead_of_the_wall_clock_is_capped(ahead: timedelta) -> None:
    wall_clock = STAMPED
    judged = judgement_time(a_record(b"", STAMPED + ahead), POLICY, wall_clock=wall_clock)
    assert judged == wall_clock + POLICY.max_future_skew
    # So a far-future order in a record stamped far ahead is still refused.
    forged = an_order(STAMPED + ahead)
    assert decode_read_at(forged, wall_clock, stamped=STAMPED + ahead) == "data.placed_at"
