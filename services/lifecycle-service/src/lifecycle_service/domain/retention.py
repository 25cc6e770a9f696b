"""Retention figures from counts: cohort retention, retention and churn rates, warning outcomes.

Pure arithmetic over counts the analytics queries read; the definitions a retention team
reads in the API docs live here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CohortRetention", "RetentionRates", "WarningOutcome", "share"]


@dataclass(frozen=True)
class CohortRetention:
    """Customers of one first-purchase month still buying ``k`` months later."""

    cohort_month: int
    active: tuple[int, ...]  # customers who bought in month cohort_month + k, k = 0, 1, ...

    @property
    def size(self) -> int:
        """Customers whose first purchase fell in the cohort month."""
        return self.active[0] if self.active else 0

    @property
    def shares(self) -> tuple[float | None, ...]:
        """``active`` as shares of the cohort's size; None for an empty cohort."""
        return tuple(share(customers, self.size) for customers in self.active)


@dataclass(frozen=True)
class RetentionRates:
    """Customer counts at both ends of a period and the moves between them."""

    customers_at_start: int
    customers_at_end: int
    new_buyers: int
    churned: int
    reactivated: int
    buyers_at_end: int
    repeat_buyers_at_end: int

    @property
    def retention_rate(self) -> float | None:
        """Classic customer retention rate (end - new) / start; None without a start."""
        return share(self.customers_at_end - self.new_buyers, self.customers_at_start)

    @property
    def churn_rate(self) -> float | None:
        """Customers who churned in the period per customer at its start."""
        return share(self.churned, self.customers_at_start)

    @property
    def repeat_purchase_rate(self) -> float | None:
        """Share of buyers at the end of the period with two orders or more."""
        return share(self.repeat_buyers_at_end, self.buyers_at_end)


@dataclass(frozen=True)
class WarningOutcome:
    """Warnings still open, saved by a purchase and lost to expiry."""

    open: int = 0
    saved: int = 0
    lost: int = 0

    @property
    def save_rate(self) -> float | None:
        """Saved per closed warning; None while none is closed."""
        return share(self.saved, self.saved + self.lost)

    def __add__(self, other: WarningOutcome) -> WarningOutcome:
        return WarningOutcome(
            self.open + other.open, self.saved + other.saved, self.lost + other.lost
        )


def share(part: int, whole: int) -> float | None:
    """``part / whole``; None when ``whole`` is zero."""
    return part / whole if whole else None
