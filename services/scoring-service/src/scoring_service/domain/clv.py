"""Predicted customer lifetime value: BG/NBD purchases times Gamma-Gamma spend, discounted monthly.

CLV = sum over months i = 1..n of (E[purchases in (T, T + i m]] - E[purchases in (T, T + (i-1) m]])
      * E[spend per purchase] / (1 + d)^i,
with m the month length in weeks and d the monthly discount rate: each month's expected purchases
are valued at the customer's expected spend and discounted to the as-of date. Spend and purchasing
are independent in the Gamma-Gamma model, so the product of the two expectations is the expected
value. The purchase part depends on the history `(x, t_x, T)` only: compute it once per distinct
history (see `collapse`) and multiply by each customer's spend.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from scoring_service.domain.bg_nbd import BgNbdParameters, expected_purchases_by_horizon
from scoring_service.domain.collapsed_histories import FloatArray, validated_histories
from scoring_service.domain.gamma_gamma import GammaGammaParameters, conditional_expected_spend

WEEKS_PER_MONTH = 52.0 / 12.0


def discounted_expected_purchases(
    bg: BgNbdParameters,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    weeks_per_month: float = WEEKS_PER_MONTH,
) -> FloatArray:
    """Expected purchases in each of the next `months` months, discounted to the as-of date."""
    _check_horizon(months, monthly_discount_rate, weeks_per_month)
    x_, t_x_, T_ = validated_histories(x, t_x, T)
    month_ends = [month * weeks_per_month for month in range(1, months + 1)]
    by_month_end = expected_purchases_by_horizon(bg, month_ends, x_, t_x_, T_)
    total = np.zeros(x_.shape, dtype=np.float64)
    purchases_so_far = np.zeros(x_.shape, dtype=np.float64)
    for month, purchases_by_month_end in enumerate(by_month_end, start=1):
        # E is increasing in the horizon; max() only absorbs rounding in the difference.
        in_month = np.maximum(purchases_by_month_end - purchases_so_far, 0.0)
        total += in_month / (1.0 + monthly_discount_rate) ** month
        purchases_so_far = purchases_by_month_end
    return total


def predicted_clv(
    bg: BgNbdParameters,
    gg: GammaGammaParameters,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    zbar: ArrayLike,
    *,
    months: int = 12,
    monthly_discount_rate: float = 0.01,
    weeks_per_month: float = WEEKS_PER_MONTH,
) -> FloatArray:
    """Discounted expected spend over the next `months` months, in the currency of `zbar`.

    Customers without repeat purchases (x = 0) are valued at the population mean spend.
    """
    purchases = discounted_expected_purchases(
        bg,
        x,
        t_x,
        T,
        months=months,
        monthly_discount_rate=monthly_discount_rate,
        weeks_per_month=weeks_per_month,
    )
    spend = conditional_expected_spend(gg, x, zbar)
    return np.asarray(purchases * spend, dtype=np.float64)


def _check_horizon(months: int, monthly_discount_rate: float, weeks_per_month: float) -> None:
    if isinstance(months, bool) or not isinstance(months, int | np.integer) or months < 0:
        raise ValueError(f"months must be a whole number >= 0, got {months!r}")
    if not (np.isfinite(monthly_discount_rate) and monthly_discount_rate >= 0):
        raise ValueError(
            f"monthly_discount_rate must be finite and >= 0, got {monthly_discount_rate}"
        )
    if not (np.isfinite(weeks_per_month) and weeks_per_month > 0):
        raise ValueError(f"weeks_per_month must be finite and > 0, got {weeks_per_month}")
