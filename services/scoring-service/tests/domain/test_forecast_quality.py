"""ROC AUC, Brier score, ECE and the reliability table of a probability forecast."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from scoring_service.domain.forecast_quality import (
    brier_score,
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
