"""The Gamma-Gamma model of spend per purchase, for customers with repeat purchases.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
Journal of Marketing Research 42(4), 415-430; and Fader & Hardie (2013), "The Gamma-Gamma Model of
Monetary Value". A customer's purchase amounts are Gamma(p, nu); nu ~ Gamma(q, v) across customers
(the paper calls v "gamma"). Spend is assumed independent of the purchase process, so the model is
fitted on `(x, zbar)` of the customers with x > 0 repeat purchases, zbar = their mean amount.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import digamma, gammaln

from scoring_service.domain.collapsed_histories import (
    FloatArray,
    InvalidPurchaseHistory,
    RepeatCountLevels,
    validated_weights,
)
from scoring_service.domain.likelihood_fitting import (
    FALLBACK_PENALIZER,
    ModelFit,
    ModelFitError,
    maximise_log_likelihood,
    with_fallback,
)


@dataclass(frozen=True)
class GammaGammaParameters:
    """Amounts ~ Gamma(p, nu) per customer, nu ~ Gamma(q, v) across customers.

    q > 1 is required: otherwise the mean spend of the population, p*v/(q-1), is infinite and no
    customer value can be computed. The fit enforces it by optimising over log(q - 1).
    """

    p: float
    q: float
    v: float

    def __post_init__(self) -> None:
        for name in ("p", "q", "v"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(
                    f"Gamma-Gamma parameter {name} must be finite and > 0, got {value}"
                )
        if self.q <= 1:
            raise ValueError(
                f"Gamma-Gamma parameter q must be > 1 for a finite mean spend, got {self.q}"
            )

    @property
    def population_mean_spend(self) -> float:
        """Expected amount per purchase of a customer we know nothing about: p*v/(q-1)."""
        return self.p * self.v / (self.q - 1.0)


class GammaGammaFit(ModelFit[GammaGammaParameters]):
    """A Gamma-Gamma fit: parameters, their log-likelihood and how they were found."""


def gamma_gamma_log_likelihood(
    params: GammaGammaParameters,
    x: ArrayLike,
    zbar: ArrayLike,
    *,
    weights: ArrayLike | None = None,
) -> float:
    """Sum of weight * log f(zbar | p, q, v, x) over customers with x > 0 (others are skipped)."""
    x_, zbar_ = _validated_spend(x, zbar)
    weights_ = validated_weights(weights, x_.shape).ravel()
    repeat = _repeat_customers_with_positive_spend(x_, zbar_)
    x_, zbar_, weights_ = x_.ravel()[repeat], zbar_.ravel()[repeat], weights_[repeat]
    rows, _ = _log_likelihood_rows(params, x_, zbar_, np.log(zbar_), RepeatCountLevels.of(x_))
    return float(weights_ @ rows)


def fit_gamma_gamma(
    x: ArrayLike,
    zbar: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
) -> GammaGammaFit:
    """Maximum likelihood (or, with `penalizer` > 0, L2-regularised) estimates of p, q, v.

    Customers with x = 0 are ignored; those with x > 0 need zbar > 0 (`can_enter_spend_model`
    picks them). The penalty applies to (log p, log(q-1), log(v / geometric mean of zbar)).
    Check `converged`, or call `fit_gamma_gamma_with_fallback`.
    """
    x_, zbar_ = _validated_spend(x, zbar)
    weights_ = validated_weights(weights, x_.shape).ravel()
    repeat = _repeat_customers_with_positive_spend(x_, zbar_) & (weights_ > 0)
    x_, zbar_, weights_ = x_.ravel()[repeat], zbar_.ravel()[repeat], weights_[repeat]
    total_weight = float(weights_.sum())
    if total_weight <= 0:
        raise ModelFitError(
            "cannot fit the Gamma-Gamma spend model: no customer has a repeat purchase (x > 0)"
        )
    share = weights_ / total_weight
    log_zbar = np.log(zbar_)
    levels = RepeatCountLevels.of(x_)
    # Amounts times c give the same p and q and v times c, but the optimiser's box on log v is
    # not scale-free: v is fitted in units of the amounts' geometric mean, so amounts of 1e-6
    # or 1e11 per order fit as those of 30 do.
    log_scale = float(share @ log_zbar)
    scaled_zbar, scaled_log_zbar = np.exp(log_zbar - log_scale), log_zbar - log_scale

    def to_params(theta: FloatArray, log_unit: float = 0.0) -> GammaGammaParameters:
        log_p, log_q_minus_1, log_v = (float(value) for value in theta)
        p, q_minus_1, v = np.exp([log_p, log_q_minus_1, log_v + log_unit])
        return GammaGammaParameters(p=float(p), q=1.0 + float(q_minus_1), v=float(v))

    def mean_negative_log_likelihood(theta: FloatArray) -> tuple[float, FloatArray]:
        params = to_params(theta)
        log_likelihood, gradient = _log_likelihood_rows(
            params, x_, scaled_zbar, scaled_log_zbar, levels
        )
        chain = np.array([params.p, params.q - 1.0, params.v])
        return -float(share @ log_likelihood), -(gradient @ share) * chain

    # p = 1, q = 2 and v matching the observed mean amount: a neutral start, inside q > 1.
    start = np.log([1.0, 1.0, max(float(share @ scaled_zbar), 1e-6)])
    optimum = maximise_log_likelihood(
        mean_negative_log_likelihood,
        start,
        parameter_names=("p", "q - 1", "v"),
        penalizer=penalizer,
    )
    params = to_params(optimum.log_parameters, log_scale)
    rows_log_likelihood, _ = _log_likelihood_rows(params, x_, zbar_, log_zbar, levels)
    log_likelihood = float(weights_ @ rows_log_likelihood)
    return GammaGammaFit.from_optimum(params, log_likelihood, optimum, penalizer)


def fit_gamma_gamma_with_fallback(
    x: ArrayLike,
    zbar: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = FALLBACK_PENALIZER,
) -> GammaGammaFit:
    """`fit_gamma_gamma`, refitted regularised when plain ML does not converge (`with_fallback`)."""
    return with_fallback(
        "Gamma-Gamma",
        lambda penalty: fit_gamma_gamma(x, zbar, weights=weights, penalizer=penalty),
        penalizer,
    )


def can_enter_spend_model(x: ArrayLike, zbar: ArrayLike) -> NDArray[np.bool_]:
    """Which customers the fit can learn from: repeat buyers (whole x > 0) with a finite zbar > 0.

    Others are not errors in the data: a customer whose repeat orders were all free or refunded
    has zbar = 0, which the Gamma density of amounts gives no weight. Fit on the rest (and say
    how many were left out); `conditional_expected_spend` still values them.
    """
    x_ = np.asarray(x, dtype=np.float64)
    zbar_ = np.asarray(zbar, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.asarray(
            np.isfinite(x_) & (x_ > 0) & (x_ == np.round(x_)) & np.isfinite(zbar_) & (zbar_ > 0),
            dtype=np.bool_,
        )


def conditional_expected_spend(
    params: GammaGammaParameters, x: ArrayLike, zbar: ArrayLike
) -> FloatArray:
    """Expected amount of a future purchase given x repeat purchases averaging zbar.

    E[Z | x, zbar] = p (v + x zbar) / (p x + q - 1): a weighted average of the population mean
    p v/(q-1) (weight (q-1)/(p x + q - 1)) and the customer's own mean zbar (weight p x/(...)).
    With x = 0 it is the population mean, whatever zbar holds.
    """
    x_, zbar_ = _validated_spend(x, zbar)
    p, q, v = params.p, params.q, params.v
    zbar_ = np.where(x_ > 0, zbar_, 0.0)
    return np.asarray(p * (v + x_ * zbar_) / (p * x_ + q - 1.0), dtype=np.float64)


def _log_likelihood_rows(
    params: GammaGammaParameters,
    x: FloatArray,
    zbar: FloatArray,
    log_zbar: FloatArray,
    levels: RepeatCountLevels,
) -> tuple[FloatArray, FloatArray]:
    """Per-customer log f(zbar | x) and its gradient w.r.t. (p, q, v), shape (3, customers).

    zbar | nu ~ Gamma(p x, x nu), nu ~ Gamma(q, v) give f(zbar) = Gamma(px+q) / (Gamma(px)
    Gamma(q)) v^q x^(px) zbar^(px-1) / (v + x zbar)^(px+q). Terms of x alone are computed once
    per distinct x (`levels`).
    """
    p, q, v = params.p, params.q, params.v
    n = levels.values
    px = p * x
    v_xz = v + x * zbar
    log_v_xz = np.log(v_xz)
    digamma_pnq = digamma(p * n + q)
    rows = (
        levels.expand(gammaln(p * n + q) - gammaln(p * n) - gammaln(q) + p * n * np.log(n))
        + q * np.log(v) + (px - 1.0) * log_zbar - (px + q) * log_v_xz
    )  # fmt: skip
    gradient = np.stack(
        [
            x * (levels.expand(digamma_pnq - digamma(p * n) + np.log(n)) + log_zbar - log_v_xz),
            levels.expand(digamma_pnq - digamma(q)) + np.log(v) - log_v_xz,
            q / v - (px + q) / v_xz,
        ]
    )
    return np.asarray(rows, dtype=np.float64), gradient


def _validated_spend(x: ArrayLike, zbar: ArrayLike) -> tuple[FloatArray, FloatArray]:
    try:
        x_, zbar_ = (
            np.array(values, dtype=np.float64)
            for values in np.broadcast_arrays(
                np.asarray(x, dtype=np.float64), np.asarray(zbar, dtype=np.float64)
            )
        )
    except ValueError as error:
        raise InvalidPurchaseHistory(f"x and zbar do not have matching shapes: {error}") from None
    if not bool(np.all(np.isfinite(x_) & (x_ >= 0) & (x_ == np.round(x_)))):
        raise InvalidPurchaseHistory("x (repeat purchase days) must be finite whole numbers >= 0")
    if not bool(np.all(np.isfinite(zbar_) & (zbar_ >= 0))):
        raise InvalidPurchaseHistory("zbar (mean repeat purchase amount) must be finite and >= 0")
    return x_, zbar_


def _repeat_customers_with_positive_spend(x: FloatArray, zbar: FloatArray) -> NDArray[np.bool_]:
    repeat = (x > 0).ravel()
    if bool(np.any(zbar.ravel()[repeat] <= 0)):
        raise InvalidPurchaseHistory(
            "zbar must be > 0 for customers with repeat purchases: the spend model needs positive "
            "amounts; leave out customers whose repeat purchases were all free or refunded"
        )
    return repeat
