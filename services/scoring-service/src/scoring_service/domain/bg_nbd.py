"""The BG/NBD model of repeat buying: who is still a customer, and how much will they buy.

Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the Pareto/NBD
Model", Marketing Science 24(2), 275-284. While alive, a customer buys at a Poisson rate lambda,
lambda ~ Gamma(shape r, rate alpha) across customers; after each purchase the customer drops out
for good with probability p, p ~ Beta(a, b) across customers. Dropout is never observed.

Inputs per customer: `x` repeat purchase days, `t_x` time of the last purchase and `T` age, both
measured from the first purchase, in weeks (callers convert whole days with /7). Horizons too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.integrate import quad
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from scoring_service.domain.collapsed_histories import (
    FloatArray,
    InvalidPurchaseHistory,
    RepeatCountLevels,
    collapse,
    validated_histories,
    validated_weights,
)
from scoring_service.domain.likelihood_fitting import (
    FALLBACK_PENALIZER,
    ModelFit,
    ModelFitError,
    maximise_log_likelihood,
    with_fallback,
)

_PARAMETER_NAMES = ("r", "alpha", "a", "b")


@dataclass(frozen=True)
class BgNbdParameters:
    """Purchase rate ~ Gamma(r, alpha) (mean r/alpha per week); dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in _PARAMETER_NAMES:
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"BG/NBD parameter {name} must be finite and > 0, got {value}")


class BgNbdFit(ModelFit[BgNbdParameters]):
    """A BG/NBD fit: parameters, their log-likelihood and how they were found."""


def bg_nbd_log_likelihood(
    params: BgNbdParameters,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    weights: ArrayLike | None = None,
) -> float:
    """Sum over customers of weight * log L(r, alpha, a, b | x, t_x, T) (FHL 2005, eq. 6)."""
    x_, t_x_, T_ = validated_histories(x, t_x, T)
    weights_ = validated_weights(weights, x_.shape)
    x_ = x_.ravel()
    rows, _ = _log_likelihood_rows(params, x_, t_x_.ravel(), T_.ravel(), RepeatCountLevels.of(x_))
    return float(weights_.ravel() @ rows)


def fit_bg_nbd(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
) -> BgNbdFit:
    """Maximum likelihood (or, with `penalizer` > 0, L2-regularised on log-parameters) estimates.

    Identical histories are collapsed first, so the cost grows with the number of distinct
    `(x, t_x, T)` rows, not customers. `weights` counts customers per given row (default 1 each).
    Check `converged` before using the result, or call `fit_bg_nbd_with_fallback`.
    """
    x_, t_x_, T_ = validated_histories(x, t_x, T)
    weights_ = validated_weights(weights, x_.shape).ravel()
    rows = collapse(x_, t_x_, T_)
    row_weights = np.bincount(rows.inverse, weights=weights_, minlength=rows.row_count)
    total_weight = float(row_weights.sum())
    if total_weight <= 0:
        raise ModelFitError("cannot fit BG/NBD: there are no customers (total weight is 0)")
    share = row_weights / total_weight
    levels = RepeatCountLevels.of(rows.x)

    def mean_negative_log_likelihood(theta: FloatArray) -> tuple[float, FloatArray]:
        params = BgNbdParameters(*(float(v) for v in np.exp(theta)))
        log_likelihood, gradient = _log_likelihood_rows(params, rows.x, rows.t_x, rows.T, levels)
        natural = np.array([params.r, params.alpha, params.a, params.b])
        return -float(share @ log_likelihood), -(gradient @ share) * natural

    # Start from a mean purchase rate matching the data with r = 1 and a uniform dropout prior.
    mean_rate = float(weights_ @ x_.ravel()) / max(float(weights_ @ T_.ravel()), 1e-9)
    start = np.log([1.0, 1.0 / max(mean_rate, 1e-6), 1.0, 1.0])
    optimum = maximise_log_likelihood(
        mean_negative_log_likelihood,
        start,
        parameter_names=_PARAMETER_NAMES,
        penalizer=penalizer,
    )
    params = BgNbdParameters(*(float(v) for v in np.exp(optimum.log_parameters)))
    rows_log_likelihood, _ = _log_likelihood_rows(params, rows.x, rows.t_x, rows.T, levels)
    log_likelihood = float(row_weights @ rows_log_likelihood)
    return BgNbdFit.from_optimum(params, log_likelihood, optimum, penalizer)


def fit_bg_nbd_with_fallback(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = FALLBACK_PENALIZER,
) -> BgNbdFit:
    """`fit_bg_nbd`, refitted regularised when plain ML does not converge (`with_fallback`)."""
    return with_fallback(
        "BG/NBD",
        lambda penalty: fit_bg_nbd(x, t_x, T, weights=weights, penalizer=penalty),
        penalizer,
    )


def p_alive(params: BgNbdParameters, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """P(still a customer at T | x, t_x, T) (FHL 2005, eq. 13).

    A customer without repeat purchases has P(alive) = 1: BG/NBD lets customers drop out only
    right after a purchase, and the first purchase is not modelled. So 1 - P(alive) is no churn
    risk (every one-time buyer would score 0 forever); use `probability_no_purchase` for that.
    """
    x_, t_x_, T_ = validated_histories(x, t_x, T)
    return _p_alive(params, x_, t_x_, T_)


def expected_purchases(
    params: BgNbdParameters, horizon: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Expected number of purchase days in (T, T + horizon] given the history (FHL 2005, eq. 10).

    E = P(alive) * E_alive with E_alive = (a+b+x-1)/(a-1) * [1 - ((alpha+T)/(alpha+T+h))^(r+x)
    * 2F1(r+x, b+x; a+b+x-1; h/(alpha+T+h))]. Equivalently E_alive = E[(1 - (1 + p h/(alpha+T))
    ^-(r+x)) / p] with p ~ Beta(a, b+x), so (r+x) h/(alpha+T) >= E_alive >= 1 - (1 +
    h/(alpha+T))^-(r+x): where scipy's 2F1 overflows or lands outside those bounds (heavy buyers
    over long horizons), that integral is computed numerically instead.
    """
    x_, t_x_, T_ = validated_histories(x, t_x, T)
    horizon_ = _validated_horizon(horizon)
    x_, t_x_, T_, horizon_ = (np.array(v) for v in np.broadcast_arrays(x_, t_x_, T_, horizon_))
    return _p_alive(params, x_, t_x_, T_) * _expected_purchases_if_alive(params, horizon_, x_, T_)


def expected_purchases_by_horizon(
    params: BgNbdParameters, horizons: Sequence[float], x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """`expected_purchases` for each horizon (one row per horizon, one column per customer).

    The same numbers, computed with less work: P(alive) once for all horizons, and the
    expected purchases of an alive customer (a Gauss hypergeometric function of x and T, not
    t_x) once per distinct (x, T) pair, far fewer than the distinct histories.
    """
    x_, t_x_, T_ = validated_histories(x, t_x, T)
    shape = x_.shape
    x_, t_x_, T_ = x_.ravel(), t_x_.ravel(), T_.ravel()
    alive = _p_alive(params, x_, t_x_, T_)
    pairs = collapse(x_, np.zeros_like(x_), T_)
    result = np.empty((len(horizons), x_.size), dtype=np.float64)
    for row, horizon in enumerate(horizons):
        horizon_ = np.full(pairs.row_count, _validated_horizon(horizon), dtype=np.float64)
        if_alive = _expected_purchases_if_alive(params, horizon_, pairs.x, pairs.T)
        result[row] = alive * pairs.expand(if_alive)
    return result.reshape((len(horizons), *shape))


def probability_no_purchase(
    params: BgNbdParameters, horizon: ArrayLike, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """P(no purchase in (T, T + horizon] | history): the churn risk over that horizon.

    = (1 - P(alive)) + P(alive) * ((alpha+T) / (alpha+T+horizon))^(r+x).
    Why: dropout happens only right after a purchase, so a customer who buys nothing in the
    window was either already dead at T (no purchase for sure) or alive at T and made no purchase,
    staying alive throughout. Given alive at T, the history's likelihood is lambda^x exp(-lambda
    T) (1-p)^x, so lambda | alive ~ Gamma(r+x, alpha+T); P(no Poisson event in h | lambda) =
    exp(-lambda h), whose mean over that Gamma is ((alpha+T)/(alpha+T+h))^(r+x).
    Unlike 1 - P(alive), this grows with silence for one-time buyers too, and it falls as the
    horizon grows (more time, more chance to buy).
    """
    x_, t_x_, T_ = validated_histories(x, t_x, T)
    horizon_ = _validated_horizon(horizon)
    alive = _p_alive(params, x_, t_x_, T_)
    silent_if_alive = np.exp(-(params.r + x_) * np.log1p(horizon_ / (params.alpha + T_)))
    return np.asarray(np.clip(1.0 - alive + alive * silent_if_alive, 0.0, 1.0), dtype=np.float64)


def expected_interpurchase_time(
    params: BgNbdParameters, x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> FloatArray:
    """Expected weeks between purchases for a customer who is still alive.

    Given alive at T, lambda ~ Gamma(r+x, alpha+T), and the mean time between purchases of a
    Poisson process is 1/lambda. Its posterior mean is (alpha+T)/(r+x-1) when r+x > 1; for
    r+x <= 1 it is infinite (too little evidence rules out near-zero rates), so we return
    1/E[lambda] = (alpha+T)/(r+x) there: finite, continuous in the data, and still "long".
    `t_x` is not used (the rate posterior of an alive customer does not depend on it).
    """
    x_, _, T_ = validated_histories(x, t_x, T)
    shape = params.r + x_
    divisor = np.where(shape > 1.0, shape - 1.0, shape)
    return np.asarray((params.alpha + T_) / divisor, dtype=np.float64)


def _log_likelihood_rows(
    params: BgNbdParameters,
    x: FloatArray,
    t_x: FloatArray,
    T: FloatArray,
    levels: RepeatCountLevels,
) -> tuple[FloatArray, FloatArray]:
    """Per-row log-likelihood and its gradient w.r.t. (r, alpha, a, b), shape (4, rows).

    log L = ln A1 + ln A2 + ln(A3 + [x>0] A4) with A1 = Gamma(r+x) alpha^r / Gamma(r),
    A2 = B(a, b+x) / B(a, b), A3 = (alpha+T)^-(r+x), A4 = a/(b+x-1) (alpha+t_x)^-(r+x);
    the sum is taken in log space with logaddexp so large x or T cannot overflow. Terms of x
    alone are computed once per distinct x (`levels`).
    """
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    n = levels.values
    repeat = x > 0
    log_alpha_T = np.log(alpha + T)
    log_alpha_t_x = np.log(alpha + t_x)
    b_x_1 = b + np.maximum(x, 1.0) - 1.0
    log_a1_a2 = levels.expand(
        gammaln(r + n)
        - gammaln(r)
        + gammaln(a + b)
        + gammaln(b + n)
        - gammaln(b)
        - gammaln(a + b + n)
    ) + r * np.log(alpha)
    log_a3 = -(r + x) * log_alpha_T
    log_a4 = np.where(repeat, np.log(a) - np.log(b_x_1) - (r + x) * log_alpha_t_x, -np.inf)
    log_mix = np.logaddexp(log_a3, log_a4)
    share_a3, share_a4 = np.exp(log_a3 - log_mix), np.exp(log_a4 - log_mix)
    digamma_ab_abx = levels.expand(digamma(a + b) - digamma(a + b + n))
    gradient = np.stack(
        [
            levels.expand(digamma(r + n) - digamma(r)) + np.log(alpha)
            - share_a3 * log_alpha_T - share_a4 * log_alpha_t_x,
            r / alpha - (r + x) * (share_a3 / (alpha + T) + share_a4 / (alpha + t_x)),
            digamma_ab_abx + share_a4 / a,
            digamma_ab_abx + levels.expand(digamma(b + n) - digamma(b)) - share_a4 / b_x_1,
        ]
    )  # fmt: skip
    return np.asarray(log_a1_a2 + log_mix, dtype=np.float64), gradient


def _p_alive(params: BgNbdParameters, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    # 1 / (1 + [x>0] a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), as a logistic of the log-odds.
    log_odds_dead = (
        np.log(params.a)
        - np.log(params.b + np.maximum(x, 1.0) - 1.0)
        + (params.r + x) * np.log1p((T - t_x) / (params.alpha + t_x))
    )
    return np.asarray(np.where(x > 0, expit(-log_odds_dead), 1.0), dtype=np.float64)


def _validated_horizon(horizon: ArrayLike) -> FloatArray:
    values = np.asarray(horizon, dtype=np.float64)
    if not bool(np.all(np.isfinite(values) & (values >= 0))):
        raise InvalidPurchaseHistory("horizon must be finite and >= 0 (weeks)")
    return values


def _expected_purchases_if_alive(
    params: BgNbdParameters, horizon: FloatArray, x: FloatArray, T: FloatArray
) -> FloatArray:
    result_shape = np.shape(horizon)
    horizon, x, T = horizon.ravel(), x.ravel(), T.ravel()
    r, alpha, b = params.r, params.alpha, params.b
    shape = r + x
    scaled_horizon = horizon / (alpha + T)
    lower = -np.expm1(-shape * np.log1p(scaled_horizon))
    upper = shape * scaled_horizon

    def closed_form(a: float) -> FloatArray:
        with np.errstate(all="ignore"):
            bracket = 1.0 - np.exp(-shape * np.log1p(scaled_horizon)) * hyp2f1(
                shape, b + x, a + b + x - 1.0, horizon / (alpha + T + horizon)
            )
            return np.asarray((a + b + x - 1.0) / (a - 1.0) * bracket, dtype=np.float64)

    # At a = 1 the closed form is 0/0; it is smooth in a, so average two close neighbours.
    if abs(params.a - 1.0) < 1e-6:
        value = 0.5 * (closed_form(1.0 - 1e-6) + closed_form(1.0 + 1e-6))
    else:
        value = closed_form(params.a)
    slack = 1e-9 * upper + 1e-300
    suspect = ~(np.isfinite(value) & (value >= lower - slack) & (value <= upper + slack))
    for i in np.flatnonzero(suspect):
        value[i] = _expected_purchases_if_alive_by_quadrature(
            params, float(horizon[i]), float(x[i]), float(T[i])
        )
    value = np.where(np.isfinite(value), value, lower)  # never observed; keeps NaN out regardless
    return np.clip(value, lower, upper).reshape(result_shape)


def _expected_purchases_if_alive_by_quadrature(
    params: BgNbdParameters, horizon: float, x: float, T: float
) -> float:
    """E[(1 - (1 + p c)^-(r+x)) / p], p ~ Beta(a, b+x), c = h/(alpha+T), integrated over ln p."""
    shape, a, beta = params.r + x, params.a, params.b + x
    scaled_horizon = horizon / (params.alpha + T)
    if scaled_horizon == 0.0:
        return 0.0
    log_beta = float(betaln(a, beta))

    def integrand(log_p: float) -> float:
        p = float(np.exp(log_p))
        per_p = (
            shape * scaled_horizon
            if p * scaled_horizon < 1e-12
            else -float(np.expm1(-shape * np.log1p(p * scaled_horizon))) / p
        )
        log_survivor = 0.0 if beta == 1.0 else (beta - 1.0) * float(np.log1p(-min(p, 1 - 1e-16)))
        return per_p * float(np.exp(a * log_p + log_survivor - log_beta))

    # Split at the mode of ln p so the adaptive rule sees the peak of narrow posteriors.
    mode = float(np.log(a / (a + beta)))
    below, _ = quad(integrand, -np.inf, mode, epsabs=0.0, epsrel=1e-10, limit=200)
    above, _ = quad(integrand, mode, 0.0, epsabs=0.0, epsrel=1e-10, limit=200)
    return float(below) + float(above)
