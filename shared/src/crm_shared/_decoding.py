"""From a consumed record to the event a handler applies, judged by the deployment's order policy.

Every consumer of `crm.orders` judges an order at the same moment: the Kafka record's timestamp,
which is the same for every consumer group however late each reads it. So scoring, lifecycle and
notification accept or dead-letter exactly the same orders, on a replay too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from crm_contracts import (
    CloudEvent,
    InvalidEvent,
    OrderCancelled,
    OrderPlaced,
    OrderPolicy,
    OrderRefunded,
    check_moment,
    check_order,
)
from crm_shared._clock import utc_now
from crm_shared._wire_decoding import decode_record_value

# A tuple, made once: `A | B | C` in the check would build a union for every record.
_ORDER_EVENTS = (OrderPlaced, OrderRefunded, OrderCancelled)


def judgement_time(
    record: ConsumerRecord[bytes, bytes], policy: OrderPolicy, *, wall_clock: datetime
) -> datetime:
    """The moment an order on `record` is judged at: the record's timestamp.

    Without a timestamp (a pre-0.10 message format), the wall clock. A timestamp further ahead of
    the wall clock than the allowed skew is a forged or broken producer clock: it is capped there,
    so it cannot make a far-future order look current.
    """
    if record.timestamp is None or record.timestamp < 0:
        return wall_clock
    stamped = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    return min(stamped, wall_clock + policy.max_future_skew)


def cloud_event_decoder(
    policy: OrderPolicy, *, clock: Callable[[], datetime] = utc_now
) -> Callable[[ConsumerRecord[bytes, bytes]], CloudEvent]:
    """Decode a CloudEvent and refuse an `order.*` event the deployment cannot account for.

    Decoding is `decode_event`'s, on msgspec's fast path where it is sure (`_wire_decoding`).

    Raises `InvalidEvent` (the consumer dead-letters it) with the field named as on the wire:
    `data.total.currency`, `data.placed_at`, or `time` for the envelope's own time.
    """

    def decode(record: ConsumerRecord[bytes, bytes]) -> CloudEvent:
        event = decode_record_value(record.value or b"")
        if isinstance(event.data, _ORDER_EVENTS):
            now = judgement_time(record, policy, wall_clock=clock())
            try:
                check_order(event.data, policy, now)
            except InvalidEvent as refusal:
                raise InvalidEvent(refusal.reason, field=f"data.{refusal.field}") from None
            # Consumers also read the envelope's time (e.g. as the moment to re-score at).
            check_moment(event.time, "time", policy, now)
        return event

    return decode
