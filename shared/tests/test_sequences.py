"""Producer sequences: every copy of a row is known again, whatever the order copies arrive in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crm_shared._sequences import (
    PRODUCER_HEADER,
    SEQUENCE_HEADER,
    ProducerPosition,
    decode_gaps,
    encode_gaps,
    producer_stamp,
)


@st.composite
def deliveries(draw: st.DrawFn) -> list[int]:
    """Sequences from some start, each sent one or more times, the copies shuffled within a
    bounded window (a re-send overtaken by later rows), as a relay's retries produce them."""
    start = draw(st.integers(min_value=0, max_value=50))
    count = draw(st.integers(min_value=0, max_value=40))
    sent = [s for s in range(start, start + count) for _ in range(draw(st.integers(1, 3)))]
    shuffled = draw(st.permutations(sent))
    return list(shuffled)


@given(deliveries())
def test_each_sequence_is_admitted_exactly_once_in_any_order(arrivals: list[int]) -> None:
    position = ProducerPosition()
    admitted = [sequence for sequence in arrivals if position.admit(sequence)]
    assert sorted(admitted) == sorted(set(arrivals))
    # Round trip through the stored form on the way: nothing changes.
    stored = ProducerPosition(position.next_sequence, decode_gaps(encode_gaps(position.gaps)))
    assert stored == position
    assert not any(stored.admit(sequence) for sequence in arrivals)


def test_a_copy_that_overtook_an_earlier_row_leaves_a_gap_the_earlier_row_fills() -> None:
    position = ProducerPosition()
    assert [position.admit(s) for s in (0, 1, 3, 4)] == [True] * 4
    assert position.gaps == [(2, 3)]
    assert position.admit(2)  # the row whose first send failed, sent again
    assert position.gaps == []
    assert not position.admit(3)  # the re-send of a row that went through the first time


def test_gaps_stay_a_few_ranges_however_many_events_flow() -> None:
    position = ProducerPosition()
    for sequence in range(1_000, 100_000):
        position.admit(sequence)
    assert position.gaps == [(0, 1_000)]  # before this consumer's first sight: never applied
    assert position.admit(10)  # a copy of a row from before: not applied here, so applied


def test_records_of_outside_producers_carry_no_stamp() -> None:
    assert producer_stamp([]) is None
    assert producer_stamp([(PRODUCER_HEADER, b"p-1")]) is None
    assert producer_stamp([(PRODUCER_HEADER, b"p-1"), (SEQUENCE_HEADER, b"x")]) is None
    assert producer_stamp([(PRODUCER_HEADER, b"p-1"), (SEQUENCE_HEADER, b"7")]) == ("p-1", 7)
