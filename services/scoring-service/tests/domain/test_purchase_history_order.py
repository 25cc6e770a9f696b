"""Histories do not depend on the order of the ledger's rows: a ledger sorted once by
`sorted_ledger` (which `histories_as_of` then need not sort) gives exactly the same ones."""

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring_service.domain.purchase_history import (
    PurchaseLedger,
    histories_as_of,
    sorted_ledger,
)

orders = st.lists(
    st.tuples(
        st.integers(0, 12),  # customer
        st.integers(18_000, 18_400),  # day
        st.one_of(st.just(0.0), st.floats(0.01, 1e5)),  # amount
    ),
    max_size=80,
)


def ledger_of(rows: list[tuple[int, int, float]]) -> PurchaseLedger:
    customer, day, amount = (np.array(column) for column in zip(*rows, strict=True))
    return PurchaseLedger(customer.astype(np.int64), day.astype(np.int64), amount.astype(float))


@settings(max_examples=300, deadline=None)
@given(rows=orders.filter(bool), as_of=st.integers(17_990, 18_500), seed=st.integers(0, 2**32 - 1))
def test_a_sorted_ledger_gives_the_histories_of_the_unsorted_one(rows, as_of, seed):
    shuffled = ledger_of(rows)
    order = np.random.default_rng(seed).permutation(len(rows))
    shuffled = PurchaseLedger(shuffled.customer[order], shuffled.day[order], shuffled.amount[order])
    ordered = sorted_ledger(shuffled)

    assert sorted_ledger(ordered) is ordered  # already sorted: kept as it is
    assert sorted(zip(ordered.customer.tolist(), ordered.day.tolist(), strict=True)) == list(
        zip(ordered.customer.tolist(), ordered.day.tolist(), strict=True)
    )
    expected, got = histories_as_of(shuffled, as_of), histories_as_of(ordered, as_of)
    for field in dataclasses.fields(expected):
        before, after = getattr(expected, field.name), getattr(got, field.name)
        assert np.array_equal(before, after, equal_nan=True), field.name
