"""Repeat-purchase histories as the BG/NBD model reads them, and their collapsing to distinct rows.

A history is `(x, t_x, T)`: `x` repeat purchase days, `t_x` the time from the first to the last
purchase, `T` the time from the first purchase to the as-of date (weeks in this package). Callers
round times to whole days before converting, so a million customers share a few tens of thousands
of distinct histories; the likelihood and the predictions only need each distinct row once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class InvalidPurchaseHistory(ValueError):
    """Model inputs that no purchase history can produce (negative counts, t_x > T, NaN...)."""


@dataclass(frozen=True)
class CollapsedHistories:
    """The distinct `(x, t_x, T)` rows of many customers, with how many customers share each.

    `inverse[i]` is the row of customer `i`, so `expand(values_per_row)` maps row results back to
    customers in their original order.
    """

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    weights: IntArray
    inverse: IntArray

    @property
    def customer_count(self) -> int:
        return len(self.inverse)

    @property
    def row_count(self) -> int:
        return len(self.weights)

    @property
    def columns(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """`(x, t_x, T)` of the distinct rows, in the models' argument order."""
        return self.x, self.t_x, self.T

    def expand(self, values_per_row: ArrayLike) -> FloatArray:
        """One value per customer, in the original order, from one value per distinct row."""
        values = np.asarray(values_per_row, dtype=np.float64)
        if values.shape != (self.row_count,):
            raise ValueError(
                f"expected one value per distinct row ({self.row_count}), got shape {values.shape}"
            )
        return values[self.inverse]


@dataclass(frozen=True)
class RepeatCountLevels:
    """The distinct values of x and where each customer's x sits among them.

    Special functions of x alone (Gamma and digamma of r + x, p x ...) are then computed once per
    distinct count, a few hundred at most, instead of once per customer.
    """

    values: FloatArray
    index: IntArray

    @classmethod
    def of(cls, x: FloatArray) -> RepeatCountLevels:
        values, index = np.unique(x, return_inverse=True)
        return cls(values=values.astype(np.float64), index=index.astype(np.int64).ravel())

    def expand(self, values_per_level: FloatArray) -> FloatArray:
        """One value per customer from one value per distinct count."""
        return np.asarray(values_per_level, dtype=np.float64)[self.index]


def collapse(x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> CollapsedHistories:
    """Group identical histories; rows come out sorted by `(x, t_x, T)`."""
    x_, t_x_, T_ = validated_histories(x, t_x, T)
    x_, t_x_, T_ = x_.ravel(), t_x_.ravel(), T_.ravel()
    order = np.lexsort((T_, t_x_, x_))
    xs, txs, Ts = x_[order], t_x_[order], T_[order]
    starts_row = np.ones(len(order), dtype=bool)
    starts_row[1:] = (xs[1:] != xs[:-1]) | (txs[1:] != txs[:-1]) | (Ts[1:] != Ts[:-1])
    row_of_sorted = np.cumsum(starts_row, dtype=np.int64) - 1
    inverse = np.empty(len(order), dtype=np.int64)
    inverse[order] = row_of_sorted
    weights = np.bincount(row_of_sorted, minlength=int(starts_row.sum())).astype(np.int64)
    return CollapsedHistories(
        x=xs[starts_row], t_x=txs[starts_row], T=Ts[starts_row], weights=weights, inverse=inverse
    )


def validated_histories(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The three arrays as float64, broadcast to one shape, or `InvalidPurchaseHistory`."""
    try:
        arrays = np.broadcast_arrays(
            np.asarray(x, dtype=np.float64),
            np.asarray(t_x, dtype=np.float64),
            np.asarray(T, dtype=np.float64),
        )
    except ValueError as error:
        raise InvalidPurchaseHistory(f"x, t_x and T do not have matching shapes: {error}") from None
    x_, t_x_, T_ = (np.array(a, dtype=np.float64) for a in arrays)
    for name, values in (("x", x_), ("t_x", t_x_), ("T", T_)):
        _require(np.isfinite(values), f"{name} must be finite (no NaN or infinity)")
    _require(x_ >= 0, "x (repeat purchase days) must be >= 0")
    _require(x_ == np.round(x_), "x (repeat purchase days) must be a whole number")
    _require(t_x_ >= 0, "t_x (time of the last purchase) must be >= 0")
    _require(t_x_ <= T_, "t_x (time of the last purchase) must not exceed T (customer age)")
    _require(
        (x_ > 0) | (t_x_ == 0),
        "t_x must be 0 for customers without repeat purchases (x = 0)",
    )
    return x_, t_x_, T_


def validated_weights(weights: ArrayLike | None, shape: tuple[int, ...]) -> FloatArray:
    """Per-customer weights (counts of identical customers), ones when none are given."""
    if weights is None:
        return np.ones(shape, dtype=np.float64)
    values = np.asarray(weights, dtype=np.float64)
    try:
        values = np.array(np.broadcast_to(values, shape), dtype=np.float64)
    except ValueError:
        raise InvalidPurchaseHistory(
            f"weights of shape {values.shape} do not match the histories' shape {shape}"
        ) from None
    _require(np.isfinite(values) & (values >= 0), "weights must be finite and >= 0")
    return values


def _require(condition: NDArray[np.bool_], message: str) -> None:
    if not bool(np.all(condition)):
        failing = int(np.size(condition) - np.count_nonzero(condition))
        raise InvalidPurchaseHistory(f"{message} ({failing} value(s) violate this)")
