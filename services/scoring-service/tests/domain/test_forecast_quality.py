"""ROC AUC, Brier score, ECE and the reliability table of a probability forecast."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scoring_service.domain.forecast_quality import (
    brier_score,
    ece_if_calibrated,
    forecast_quality,
    reliability_table,
    roc_auc,
)


def test_a_perfect_ranking_has_auc_one_and_a_reversed_one_zero() -> None:
    happened = np.array([0, 0, 1, 1])
    assert roc_auc([0.1, 0.2, 0.8, 0.9], happened) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], happened) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], happened) == 0.5  # ties count half
    assert roc_auc([0.2, 0.3], [1, 1]) is None  # nothing to rank against


def test_brier_is_the_mean_squared_gap() -> None:
    assert brier_score([1.0, 0.0, 0.5], [1, 0, 1]) == pytest.approx(0.25 / 3)


def test_a_constant_forecast_has_one_bin_and_ece_equal_to_its_bias() -> None:
    quality = forecast_quality(np.full(100, 0.3), np.arange(100) < 40)
    assert len(quality.reliability) == 1  # ties stay together
    assert quality.ece == pytest.approx(0.1)


def test_deciles_split_the_ranking_in_tenths_and_ece_weights_their_gaps() -> None:
    rng = np.random.default_rng(5)
    p = rng.random(1_000)
    happened = rng.random(1_000) < p
    table = reliability_table(p, happened)
    assert [b.customers for b in table] == [100] * 10
    assert all(a.mean_predicted < b.mean_predicted for a, b in itertools.pairwise(table))
    quality = forecast_quality(p, happened)
    gaps = sum(b.customers * abs(b.mean_predicted - b.observed) for b in table) / 1_000
    assert quality.ece == pytest.approx(gaps)
    assert quality.to_dict()["reliability"][0]["decile"] == 1


def test_forecasts_and_outcomes_are_checked() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        forecast_quality([1.5], [1])
    with pytest.raises(ValueError, match="as many"):
        forecast_quality([0.5, 0.5], [1])
    with pytest.raises(ValueError, match="0/1"):
        forecast_quality([0.5], [2])


@given(
    seed=st.integers(0, 2**32 - 1),
    customers=st.integers(2_000, 5_000),
    spread=st.floats(0.05, 1.0),
)
@settings(max_examples=10, deadline=None, derandomize=True)
def test_the_ece_if_calibrated_is_what_a_calibrated_forecast_shows_on_average(
    seed: int, customers: int, spread: float
) -> None:
    rng = np.random.default_rng(seed)
    p = np.clip(0.5 + spread * (rng.random(customers) - 0.5), 0.0, 1.0)
    mean, sd = ece_if_calibrated(p)
    # Outcomes drawn from the predictions themselves: a perfectly calibrated forecast.
    eces = np.array([forecast_quality(p, rng.random(customers) < p).ece for _ in range(300)])
    assert eces.mean() == pytest.approx(mean, rel=0.08)
    assert eces.std() == pytest.approx(sd, rel=0.25)


def test_the_ece_if_calibrated_shrinks_with_the_root_of_the_base() -> None:
    p = np.tile(np.linspace(0.05, 0.95, 100), 10)
    small, _ = ece_if_calibrated(p)
    large, _ = ece_if_calibrated(np.tile(p, 4))
    assert large == pytest.approx(small / 2)
    # One decile of n customers at 0.5: sqrt(2/pi) * sqrt(n/4) / n.
    assert ece_if_calibrated(np.full(400, 0.5))[0] == pytest.approx(np.sqrt(2 / np.pi) / 40)
    assert ece_if_calibrated([0.0, 1.0, 1.0]) == (0.0, 0.0)  # certain forecasts: no noise


def test_the_quality_report_carries_the_ece_a_calibrated_forecast_would_show() -> None:
    p = np.linspace(0.1, 0.9, 1_000)
    quality = forecast_quality(p, np.arange(1_000) % 2 == 0)
    assert (quality.ece_if_calibrated, quality.ece_if_calibrated_sd) == ece_if_calibrated(p)
    assert quality.to_dict()["ece_if_calibrated"] == round(quality.ece_if_calibrated, 4)
    with pytest.raises(ValueError, match="probabilities"):
        ece_if_calibrated([0.5, np.nan])
