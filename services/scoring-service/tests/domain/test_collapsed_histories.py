"""Collapsing customers to distinct (x, t_x, T) rows and mapping row results back."""

import numpy as np
import pytest

from scoring_service.domain.collapsed_histories import InvalidPurchaseHistory, collapse


def test_identical_histories_share_a_row_weighted_by_their_count():
    rows = collapse([0, 2, 0, 2, 1], [0, 5, 0, 5, 3], [10, 9, 10, 9, 9])

    assert rows.row_count == 3
    assert rows.customer_count == 5
    assert list(zip(rows.x, rows.t_x, rows.T, rows.weights, strict=True)) == [
        (0, 0, 10, 2),
        (1, 3, 9, 1),
        (2, 5, 9, 2),
    ]


def test_expand_maps_row_values_back_to_customers_in_their_order():
    x = np.array([3.0, 0, 3, 1, 0])
    t_x = np.array([4.0, 0, 4, 2, 0])
    T = np.array([6.0, 7, 6, 6, 7])
    rows = collapse(x, t_x, T)

    per_row = rows.x * 100 + rows.t_x * 10 + rows.T

    assert np.array_equal(rows.expand(per_row), x * 100 + t_x * 10 + T)


def test_expand_refuses_values_that_are_not_one_per_row():
    rows = collapse([0, 1], [0, 1], [2, 2])
    with pytest.raises(ValueError, match="one value per distinct row"):
        rows.expand([1.0, 2.0, 3.0])


def test_collapse_rejects_impossible_histories():
    with pytest.raises(InvalidPurchaseHistory, match="must not exceed T"):
        collapse([1], [5], [4])
