"""Knowing a re-sent event again by its producer sequence, with a few numbers per producer.

Stored offsets make a record read twice a no-op; what they cannot see is the same event
appended twice at two offsets. Our outbox relays are the one source of that: a relay that
dies between the broker's acknowledgement and marking the row sent sends the row again, and
a send that timed out may have been appended before it is retried. So every relay stamps each
record with a producer id (one per topic partition of its outbox) and a sequence number, both
fixed in the database *before* the row's first send and reused by every re-send.

Per producer a consumer keeps ``next_sequence`` (one above the highest seen) and the gaps
below it: half-open ranges of sequences not seen yet. A record is new exactly when its
sequence is at or above ``next_sequence`` or inside a gap; anything else was seen before.

Why this is complete, and bounded:
- Every copy of a row carries the row's one sequence, so "seen before" is exact: no event is
  taken for another and no copy is taken for new.
- Sequences of one producer are consecutive, and all of them go to one partition, which one
  consumer applies at a time (its stored offset row is locked by the batch's transaction); a
  sequence above ``next_sequence`` leaves the skipped ones as a gap, so a copy that overtook
  an earlier one (an earlier send failed and is retried after a later one went through)
  costs nothing: the earlier one fills its gap when it comes.
- The first record of a producer a consumer sees opens the gap ``[0, s)``: whatever of that
  producer lies before it was never applied here (it lies before the consumer's start or was
  deleted by retention), so a copy of it is rightly applied.
- Gaps close as their rows arrive. What stays open is one range per producer from the first
  sight, one per row the relay parked (an operator may re-queue it: then it still applies),
  and one per dead-lettered record of ours. A handful of numbers per producer, however many
  events flow: unlike an inbox of event ids, nothing grows with the stream.

Events from outside producers (shops publishing orders) carry no stamp and are checked by
their event id in the inbox, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

PRODUCER_HEADER = "crm-producer"
SEQUENCE_HEADER = "crm-sequence"


@dataclass
class ProducerPosition:
    """What one consumer has seen of one producer: the next sequence and the gaps below it."""

    # A producer never seen starts here: its first sequence s opens the gap [0, s).
    next_sequence: int = 0
    gaps: list[tuple[int, int]] = field(default_factory=list)

    def admit(self, sequence: int) -> bool:
        """Record `sequence` as seen; return whether it was new (to be applied)."""
        if sequence >= self.next_sequence:
            if sequence > self.next_sequence:
                self.gaps.append((self.next_sequence, sequence))
            self.next_sequence = sequence + 1
            return True
        for index, (low, high) in enumerate(self.gaps):
            if low <= sequence < high:
                parts = [(low, sequence), (sequence + 1, high)]
                self.gaps[index : index + 1] = [(a, b) for a, b in parts if a < b]
                return True
        return False


def encode_gaps(gaps: Sequence[tuple[int, int]]) -> str:
    """The gaps as stored: ``"lo-hi,lo-hi"``."""
    return ",".join(f"{low}-{high}" for low, high in gaps)


def decode_gaps(text: str) -> list[tuple[int, int]]:
    """The inverse of `encode_gaps`."""
    gaps: list[tuple[int, int]] = []
    for part in filter(None, text.split(",")):
        low, high = part.split("-")
        gaps.append((int(low), int(high)))
    return gaps


def producer_stamp(headers: Sequence[tuple[str, bytes]]) -> tuple[str, int] | None:
    """The (producer, sequence) a relay stamped on a record, or None (an outside producer)."""
    producer: str | None = None
    sequence: int | None = None
    for key, value in headers:
        if key == PRODUCER_HEADER:
            producer = value.decode(errors="replace")
        elif key == SEQUENCE_HEADER:
            try:
                sequence = int(value)
            except ValueError:
                return None
    if producer is None or sequence is None or sequence < 0 or len(producer) > 36:
        return None
    return producer, sequence
