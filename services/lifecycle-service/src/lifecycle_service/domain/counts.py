"""The running counts behind the analytics, as deltas a change of state adds to them.

Analytics must answer from stored history without scanning a million customers, so every
change adds to three small tables instead: daily deltas per metric (customers per stage,
buyers, repeat buyers; the count on a date is the sum of deltas up to it), transitions per day
and (from, to) stage, and cohort cells (customers of a first-purchase month active in a month).
This module computes those deltas; it knows nothing of tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime
from typing import Final

from crm_contracts import Stage

__all__ = [
    "BUYERS",
    "REPEAT_BUYERS",
    "cohort_cells",
    "month_index",
    "month_label",
    "order_count_deltas",
    "stage_metric",
]

BUYERS: Final = "buyers"
REPEAT_BUYERS: Final = "repeat_buyers"

DailyDeltas = Counter[tuple[date, str]]


def stage_metric(stage: Stage | str) -> str:
    """The daily-count metric of customers in ``stage``."""
    return f"stage:{Stage(stage).value}"


def order_count_deltas(before: int, after: int, at: datetime) -> DailyDeltas:
    """Buyer and repeat-buyer deltas when a customer's order count goes from before to after."""
    deltas: DailyDeltas = Counter()
    for metric, minimum in ((BUYERS, 1), (REPEAT_BUYERS, 2)):
        change = int(after >= minimum) - int(before >= minimum)
        if change:
            deltas[(at.date(), metric)] += change
    return deltas


def month_index(moment: datetime | date) -> int:
    """Months since year 0, so consecutive months are consecutive integers."""
    return moment.year * 12 + moment.month - 1


def month_label(index: int) -> str:
    """``YYYY-MM`` of a :func:`month_index`."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def cohort_cells(active_months: Iterable[int]) -> Counter[tuple[int, int]]:
    """The (first-purchase month, active month) cells one customer counts in, once each."""
    months = set(active_months)
    if not months:
        return Counter()
    cohort = min(months)
    return Counter({(cohort, month): 1 for month in months})
