"""Gamma-Gamma: the published CDNOW spend estimates, the spend prediction, the fit's fallback."""

from pathlib import Path

import numpy as np
import pytest

from scoring_service.domain.collapsed_histories import InvalidPurchaseHistory
from scoring_service.domain.gamma_gamma import (
    GammaGammaParameters,
    can_enter_spend_model,
    conditional_expected_spend,
    fit_gamma_gamma,
    fit_gamma_gamma_with_fallback,
    gamma_gamma_log_likelihood,
)
from scoring_service.domain.likelihood_fitting import ModelFitError

DATA = Path(__file__).parents[1] / "data"

# Exact maximum of the likelihood for the 946 CDNOW customers with x > 0 (PROVENANCE.md).
PUBLISHED = GammaGammaParameters(p=6.2488, q=3.7446, v=15.4477)
PUBLISHED_LOG_LIKELIHOOD = -4055.92


@pytest.fixture(scope="module")
def cdnow() -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(
        DATA / "cdnow_customers_summary_with_transactions.csv", delimiter=",", skiprows=1
    )
    return table[:, 1], table[:, 4]


def simulate_spend(
    *, p: float, q: float, v: float, customers: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(x, zbar) for customers with 1-5 repeat purchases whose amounts follow the model."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 6, customers).astype(float)
    nu = rng.gamma(q, 1 / v, customers)
    zbar = rng.gamma(p * x, 1 / (nu * x))
    return x, zbar


# Fitting


def test_fit_reproduces_the_published_cdnow_spend_estimates(cdnow):
    x, zbar = cdnow
    assert np.count_nonzero(x > 0) == 946

    fit = fit_gamma_gamma(x, zbar)

    assert fit.converged
    assert fit.method == "mle"
    assert fit.params.p == pytest.approx(PUBLISHED.p, abs=0.01)
    assert fit.params.q == pytest.approx(PUBLISHED.q, abs=0.01)
    assert fit.params.v == pytest.approx(PUBLISHED.v, abs=0.01)
    assert fit.log_likelihood == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.01)


def test_log_likelihood_skips_customers_without_repeat_purchases(cdnow):
    x, zbar = cdnow
    repeat = x > 0
    everyone = gamma_gamma_log_likelihood(PUBLISHED, x, zbar)
    assert everyone == gamma_gamma_log_likelihood(PUBLISHED, x[repeat], zbar[repeat])
    assert everyone == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.01)


def test_weights_count_identical_customers():
    x, zbar = simulate_spend(p=2, q=3, v=10, customers=300, seed=1)
    counts = np.arange(300) % 3 + 1

    weighted = fit_gamma_gamma(x, zbar, weights=counts)
    repeated = fit_gamma_gamma(np.repeat(x, counts), np.repeat(zbar, counts))

    assert weighted.log_likelihood == pytest.approx(repeated.log_likelihood, rel=1e-10)
    assert weighted.params.p == pytest.approx(repeated.params.p, rel=1e-6)


def test_fit_recovers_the_parameters_of_simulated_spend():
    x, zbar = simulate_spend(p=2, q=3, v=10, customers=20_000, seed=2)
    fit = fit_gamma_gamma_with_fallback(x, zbar)
    assert fit.method == "mle"
    assert fit.params.p == pytest.approx(2, rel=0.1)
    assert fit.params.q == pytest.approx(3, rel=0.1)
    assert fit.params.v == pytest.approx(10, rel=0.15)


def test_regularised_fallback_is_used_when_spend_is_too_heavy_tailed_for_a_finite_mean():
    # With q < 1 the population's mean amount is infinite; the fit keeps q > 1, so the plain
    # maximum lands on the bound q -> 1 and the penalty pulls it back inside.
    x, zbar = simulate_spend(p=2, q=0.7, v=10, customers=2_000, seed=1)

    plain = fit_gamma_gamma(x, zbar)
    fit = fit_gamma_gamma_with_fallback(x, zbar)

    assert not plain.converged
    assert "q - 1 ran to its bound" in plain.message
    assert fit.converged
    assert fit.method == "regularised"
    assert "plain maximum likelihood rejected" in fit.message
    assert fit.params.q > 1


def test_identical_amounts_for_everyone_raise_model_fit_error():
    # No spread in spend: the likelihood grows without bound as the variance shrinks to zero.
    x = np.arange(1.0, 201.0) % 7 + 1
    with pytest.raises(ModelFitError, match="Gamma-Gamma fit failed"):
        fit_gamma_gamma_with_fallback(x, np.full_like(x, 20.0))


def test_no_repeat_customers_raise_model_fit_error():
    with pytest.raises(ModelFitError, match="no customer has a repeat purchase"):
        fit_gamma_gamma_with_fallback([0.0, 0.0], [0.0, 0.0])


def test_repeat_customers_need_positive_amounts():
    with pytest.raises(InvalidPurchaseHistory, match="zbar must be > 0"):
        fit_gamma_gamma([1.0, 2.0], [10.0, 0.0])


def test_only_repeat_buyers_with_positive_spend_can_enter_the_fit():
    x = [0.0, 1.0, 2.0, 3.0, 1.0]
    zbar = [0.0, 0.0, 12.5, -1.0, np.nan]
    assert can_enter_spend_model(x, zbar).tolist() == [False, False, True, False, False]


@pytest.mark.parametrize("unit", [1e-6, 1e9, 1e11])
def test_the_fit_does_not_depend_on_the_currency_unit(unit):
    # Amounts times c give the same p and q and v times c: tiny or huge amounts per order fit
    # as well as dollars do.
    x, zbar = simulate_spend(p=2, q=3, v=10, customers=2_000, seed=3)
    in_dollars = fit_gamma_gamma(x, zbar)

    in_units = fit_gamma_gamma(x, zbar * unit)

    assert in_units.converged, in_units.message
    assert in_units.params.p == pytest.approx(in_dollars.params.p, rel=1e-4)
    assert in_units.params.q == pytest.approx(in_dollars.params.q, rel=1e-4)
    assert in_units.params.v == pytest.approx(in_dollars.params.v * unit, rel=1e-4)
    # The density of amounts in units is the density in dollars divided by the unit.
    shift = len(x) * np.log(unit)
    assert in_units.log_likelihood == pytest.approx(in_dollars.log_likelihood - shift, abs=1e-3)


def test_parameters_without_a_finite_mean_spend_are_refused():
    with pytest.raises(ValueError, match="q must be > 1"):
        GammaGammaParameters(p=2.0, q=0.9, v=10.0)


# Prediction


def test_customer_without_repeat_purchases_is_expected_to_spend_the_population_mean():
    spend = conditional_expected_spend(PUBLISHED, [0, 0], [0.0, 55.0])
    population_mean = PUBLISHED.p * PUBLISHED.v / (PUBLISHED.q - 1)
    assert spend == pytest.approx([population_mean, population_mean])
    assert PUBLISHED.population_mean_spend == pytest.approx(population_mean)


def test_expected_spend_moves_from_the_population_mean_towards_the_customers_own_mean():
    x = np.array([1.0, 2, 5, 20, 1000])
    spend = conditional_expected_spend(PUBLISHED, x, 100.0)
    population_mean = PUBLISHED.population_mean_spend
    assert np.all((spend > population_mean) & (spend < 100.0))
    assert np.all(np.diff(spend) > 0)
    assert spend[-1] == pytest.approx(100.0, rel=0.01)
    # The published formula: p (v + x zbar) / (p x + q - 1).
    assert spend[0] == pytest.approx(6.2488 * (15.4477 + 100) / (6.2488 + 2.7446))


def test_expected_spend_is_never_nan():
    rng = np.random.default_rng(5)
    x = np.where(rng.random(2_000) < 0.5, 0.0, rng.integers(1, 500, 2_000))
    zbar = np.where(x > 0, rng.exponential(50, 2_000), 0.0)
    zbar[:10] = 0.0
    spend = conditional_expected_spend(PUBLISHED, x, zbar)
    assert spend.dtype == np.float64
    assert np.all(np.isfinite(spend) & (spend > 0))
