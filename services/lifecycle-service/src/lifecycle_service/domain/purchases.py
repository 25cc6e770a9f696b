"""A customer's purchase facts rebuilt from their orders, after a cancellation or a merge."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from lifecycle_service.domain.counts import month_index
from lifecycle_service.domain.stages import CustomerLifecycle

__all__ = ["active_months", "with_purchases"]


def with_purchases(
    state: CustomerLifecycle, purchases: Sequence[tuple[datetime, float]]
) -> CustomerLifecycle:
    """``state`` with first/last purchase, count, average and latest value from ``purchases``.

    ``purchases`` are (placed_at, amount) of the orders that still count; the stage is left
    as it is for the caller to re-evaluate.
    """
    if not purchases:
        return replace(
            state,
            first_purchase_at=None,
            last_purchase_at=None,
            order_count=0,
            average_order_value=None,
            last_order_value=None,
        )
    ordered = sorted(purchases)
    return replace(
        state,
        first_purchase_at=ordered[0][0],
        last_purchase_at=ordered[-1][0],
        order_count=len(ordered),
        average_order_value=sum(amount for _, amount in ordered) / len(ordered),
        last_order_value=ordered[-1][1],
    )


def active_months(purchases: Sequence[tuple[datetime, float]]) -> set[int]:
    """The months with at least one of ``purchases``."""
    return {month_index(placed_at) for placed_at, _ in purchases}
