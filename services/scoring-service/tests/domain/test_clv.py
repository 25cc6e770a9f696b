"""Predicted CLV: monthly discounted purchases times expected spend."""

import numpy as np
import pytest

from scoring_service.domain.bg_nbd import BgNbdParameters, expected_purchases
from scoring_service.domain.clv import (
    WEEKS_PER_MONTH,
    discounted_expected_purchases,
    predicted_clv,
)
from scoring_service.domain.collapsed_histories import collapse
from scoring_service.domain.gamma_gamma import GammaGammaParameters, conditional_expected_spend

# The published CDNOW estimates (weeks, dollars).
BG = BgNbdParameters(r=0.243, alpha=4.414, a=0.793, b=2.426)
GG = GammaGammaParameters(p=6.2488, q=3.7446, v=15.4477)


def test_clv_is_the_discounted_sum_of_monthly_purchases_times_expected_spend():
    x, t_x, T, zbar = 4.0, 30.0, 38.0, 40.0
    month = 52 / 12
    cumulative = [0.0] + [float(expected_purchases(BG, i * month, x, t_x, T)) for i in range(1, 13)]
    by_hand = sum((cumulative[i] - cumulative[i - 1]) / 1.01**i for i in range(1, 13)) * float(
        conditional_expected_spend(GG, x, zbar)
    )

    assert predicted_clv(BG, GG, x, t_x, T, zbar) == pytest.approx(by_hand, rel=1e-12)


def test_clv_without_discount_is_expected_purchases_over_the_whole_horizon_times_spend():
    clv = predicted_clv(BG, GG, 2, 20, 39, 30, months=24, monthly_discount_rate=0.0)
    purchases = expected_purchases(BG, 24 * WEEKS_PER_MONTH, 2, 20, 39)
    assert clv == pytest.approx(purchases * conditional_expected_spend(GG, 2, 30), rel=1e-10)


def test_clv_grows_with_the_horizon_and_falls_with_the_discount_rate():
    by_months = [float(predicted_clv(BG, GG, 3, 30, 39, 25, months=m)) for m in (0, 1, 6, 12, 36)]
    by_rate = [
        float(predicted_clv(BG, GG, 3, 30, 39, 25, monthly_discount_rate=d))
        for d in (0.0, 0.01, 0.05)
    ]
    assert by_months[0] == 0.0
    assert np.all(np.diff(by_months) > 0)
    assert np.all(np.diff(by_rate) < 0)


def test_one_time_buyers_are_valued_at_the_population_mean_spend():
    purchases = discounted_expected_purchases(BG, 0, 0, 20)
    clv = predicted_clv(BG, GG, 0, 0, 20, 0.0)
    assert clv == pytest.approx(purchases * GG.population_mean_spend)


def test_clv_computed_once_per_distinct_history_equals_clv_per_customer():
    rng = np.random.default_rng(4)
    T = rng.integers(0, 273, 5_000) / 7
    x = np.where(rng.random(5_000) < 0.6, 0, rng.integers(1, 10, 5_000)).astype(float)
    t_x = np.where(x > 0, np.floor(rng.random(5_000) * T * 7) / 7, 0.0)
    zbar = np.where(x > 0, rng.exponential(30, 5_000) + 1, 0.0)

    rows = collapse(x, t_x, T)
    per_row = discounted_expected_purchases(BG, rows.x, rows.t_x, rows.T)
    via_rows = rows.expand(per_row) * conditional_expected_spend(GG, x, zbar)

    assert np.allclose(via_rows, predicted_clv(BG, GG, x, t_x, T, zbar), rtol=1e-12, atol=0)


def test_clv_is_never_nan_for_edge_histories():
    rng = np.random.default_rng(9)
    T = np.round(rng.uniform(0, 300, 3_000) * 7) / 7
    x = np.where(rng.random(3_000) < 0.4, 0, rng.integers(1, 200, 3_000)).astype(float)
    t_x = np.where(x > 0, np.round(rng.random(3_000) * T * 7) / 7, 0.0)
    zbar = np.where(x > 0, rng.exponential(40, 3_000), 0.0)
    T[:10], x[:10], t_x[:10], zbar[:10] = 0.0, 0.0, 0.0, 0.0
    extreme = BgNbdParameters(r=2.0, alpha=0.5, a=0.05, b=0.2)

    for bg in (BG, extreme):
        clv = predicted_clv(bg, GG, x, t_x, T, zbar, months=60)
        assert clv.dtype == np.float64
        assert np.all(np.isfinite(clv) & (clv >= 0))


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("months", -1), ("months", 1.5), ("monthly_discount_rate", -0.1), ("weeks_per_month", 0.0)],
)
def test_invalid_horizon_settings_are_rejected(keyword, value):
    with pytest.raises(ValueError, match=keyword):
        predicted_clv(BG, GG, 1, 1, 2, 10, **{keyword: value})
