"""Maximum likelihood over log-parameters, and the checks that decide whether a fit can be trusted.

Both models have strictly positive parameters, so the optimiser works on their logarithms (an
unconstrained, better-scaled space) inside wide box bounds that keep every parameter finite. The
objective is the *mean* negative log-likelihood per customer (weights summing to one), so the same
tolerances suit 2,000 customers and 2,000,000.

A fit is "converged" only when the optimum is a proper interior maximum:
- the optimiser stopped normally, or its projected gradient is negligible anyway;
- no log-parameter sits on its bound (a parameter running off to 0 or infinity);
- the Hessian of the objective is positive definite: a flat direction means the data do not
  identify some parameter (for example BG/NBD's dropout parameters when nobody ever repurchased).
A fit that fails these checks may still hold finite numbers, but they are not estimates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Literal, Self, TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

FloatArray = NDArray[np.float64]

FitMethod = Literal["mle", "regularised"]
"""How a fit was obtained: plain maximum likelihood, or with the L2 penalty on log-parameters."""

FALLBACK_PENALIZER = 1e-3
"""L2 penalty per customer on the log-parameters for the regularised refit.

Small against the curvature of a per-customer log-likelihood (order 0.01-1), so on well-behaved
data it moves estimates little, yet it pulls unidentified parameters towards 1 and keeps them
finite.
"""

LOG_PARAMETER_BOUND = 20.0
"""Log-parameters stay within +-20, i.e. parameters within about [2e-9, 5e8]."""

_GRADIENT_TOLERANCE = 1e-6
_HESSIAN_STEP = 1e-4
_MIN_RELATIVE_CURVATURE = 1e-7

MeanNegativeLogLikelihood = Callable[[FloatArray], tuple[float, FloatArray]]
"""Log-parameters -> (mean negative log-likelihood, its gradient w.r.t. the log-parameters)."""


class ModelFitError(RuntimeError):
    """Neither plain nor regularised maximum likelihood gave usable parameters for this data.

    The caller should keep serving its last good model and look at the message for the reason.
    """


@dataclass(frozen=True)
class LogParameterOptimum:
    """Where the optimiser ended, and whether that point is a trustworthy maximum."""

    log_parameters: FloatArray
    converged: bool
    iterations: int
    message: str


def maximise_log_likelihood(
    mean_negative_log_likelihood: MeanNegativeLogLikelihood,
    start: FloatArray,
    *,
    parameter_names: Sequence[str],
    penalizer: float,
) -> LogParameterOptimum:
    """Minimise the mean negative log-likelihood plus `penalizer * sum(log_parameters ** 2)`."""
    if not (np.isfinite(penalizer) and penalizer >= 0):
        raise ValueError(f"penalizer must be a finite number >= 0, got {penalizer}")

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        value, gradient = mean_negative_log_likelihood(theta)
        return value + penalizer * float(theta @ theta), gradient + 2.0 * penalizer * theta

    bound = LOG_PARAMETER_BOUND
    start = np.clip(np.asarray(start, dtype=np.float64), -bound + 1.0, bound - 1.0)
    result = minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-bound, bound)] * len(start),
        options={"maxiter": 2000, "maxcor": 20, "ftol": 1e-15, "gtol": 1e-10},
    )
    theta = np.asarray(result.x, dtype=np.float64)
    value, gradient = objective(theta)
    problems: list[str] = []
    if not (np.isfinite(value) and np.all(np.isfinite(gradient)) and np.all(np.isfinite(theta))):
        problems.append("the log-likelihood or its gradient is not finite at the optimum")
    else:
        problems.extend(
            f"{name} ran to its bound ({np.exp(log_value):.3g})"
            for name, log_value in zip(parameter_names, theta, strict=True)
            if abs(log_value) >= bound - 1e-6
        )
        if not result.success and float(np.max(np.abs(gradient))) > _GRADIENT_TOLERANCE:
            problems.append("the optimiser stopped before the gradient vanished")
        if not problems and not _is_proper_maximum(objective, theta):
            problems.append(
                "the likelihood is flat in some direction: this data does not identify "
                "every parameter"
            )
    status = str(result.message)
    return LogParameterOptimum(
        log_parameters=theta,
        converged=not problems,
        iterations=int(result.nit),
        message=status if not problems else f"{'; '.join(problems)} (optimiser: {status})",
    )


def _is_proper_maximum(
    objective: Callable[[FloatArray], tuple[float, FloatArray]], theta: FloatArray
) -> bool:
    """Whether the Hessian (central differences of the gradient) is positive definite."""
    size = len(theta)
    hessian = np.empty((size, size))
    for i in range(size):
        step = np.zeros(size)
        step[i] = _HESSIAN_STEP
        hessian[:, i] = (objective(theta + step)[1] - objective(theta - step)[1]) / (
            2 * _HESSIAN_STEP
        )
    eigenvalues = np.linalg.eigvalsh((hessian + hessian.T) / 2)
    if not np.all(np.isfinite(eigenvalues)):
        return False
    return bool(eigenvalues[0] > _MIN_RELATIVE_CURVATURE * max(1.0, float(eigenvalues[-1])))


ParamsT = TypeVar("ParamsT")


@dataclass(frozen=True)
class ModelFit(Generic[ParamsT]):
    """Fitted parameters, the (unpenalised) log-likelihood they reach, and how they were found."""

    params: ParamsT
    log_likelihood: float
    converged: bool
    iterations: int
    method: FitMethod
    message: str

    @classmethod
    def from_optimum(
        cls, params: ParamsT, log_likelihood: float, optimum: LogParameterOptimum, penalizer: float
    ) -> Self:
        """The fit `optimum` reached with `penalizer`, whose parameters give `log_likelihood`."""
        return cls(
            params=params,
            log_likelihood=log_likelihood,
            converged=optimum.converged,
            iterations=optimum.iterations,
            method="regularised" if penalizer > 0 else "mle",
            message=optimum.message,
        )


FitT = TypeVar("FitT", bound=ModelFit[Any])


def with_fallback(model: str, fit: Callable[[float], FitT], penalizer: float) -> FitT:
    """Fit with plain maximum likelihood (`fit(0.0)`); if that does not converge, refit with
    `penalizer`. The result says which one it came from, and why the plain fit was rejected.

    Raises `ModelFitError` when neither converges: keep the last good model then.
    """
    plain = fit(0.0)
    if plain.converged:
        return plain
    regularised = fit(penalizer)
    if not regularised.converged:
        raise ModelFitError(
            f"{model} fit failed. Plain maximum likelihood: {plain.message}. "
            f"Regularised (penalizer {penalizer:g}): {regularised.message}."
        )
    return replace(
        regularised,
        method="regularised",
        message=(
            f"plain maximum likelihood rejected ({plain.message}); regularised refit with "
            f"penalizer {penalizer:g}: {regularised.message}"
        ),
    )
