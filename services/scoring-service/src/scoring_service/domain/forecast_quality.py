"""How good a probability forecast is: ranking (ROC AUC), accuracy (Brier), calibration (ECE).

All figures compare predicted probabilities of an event (here: a customer stays silent over
the churn horizon) with what happened, vectorised over any number of customers.

The reliability table cuts the customers into ten groups by predicted probability (deciles of
the ranking) and shows, per group, the mean prediction beside the observed share. Customers
with the same prediction always fall into the same group (a group starts at the rank of the
first of them), so the table does not depend on the order of ties. The expected calibration
error (ECE) is the customer-weighted mean gap between the two columns: equal-count deciles,
not equal-width bins of the probability (those put most customers of a skewed forecast into
two or three bins and read differently: on the CDNOW holdout 0.025 where the deciles say
0.021), and it is the ECE of issue 13's goal.

An observed share is a sample, so even a perfectly calibrated forecast shows an ECE above 0:
`ece_if_calibrated` is the ECE that sampling noise alone gives on average, for these very
predictions and decile sizes, and `ece_if_calibrated_sd` its spread. With about 240 customers
per decile, as on the CDNOW sample, that expectation is about 0.021: an ECE there is as good
as a forecast can show on such a base, and one several spreads above it is miscalibrated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray
from scipy.stats import rankdata

Floats = NDArray[np.float64]
DECILES = 10


@dataclass(frozen=True)
class ReliabilityBin:
    """One decile of the ranking: its size, mean prediction and observed event share."""

    decile: int
    customers: int
    mean_predicted: float
    observed: float


@dataclass(frozen=True)
class ForecastQuality:
    """ROC AUC, Brier score, ECE and the reliability table of one forecast."""

    customers: int
    mean_predicted: float
    observed: float
    roc_auc: float | None
    brier: float
    ece: float
    reliability: tuple[ReliabilityBin, ...]
    ece_if_calibrated: float
    ece_if_calibrated_sd: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (figures rounded to 4 decimals)."""
        return {
            "customers": self.customers,
            "mean_predicted": round(self.mean_predicted, 4),
            "observed": round(self.observed, 4),
            "roc_auc": None if self.roc_auc is None else round(self.roc_auc, 4),
            "brier": round(self.brier, 4),
            "ece": round(self.ece, 4),
            "ece_if_calibrated": round(self.ece_if_calibrated, 4),
            "ece_if_calibrated_sd": round(self.ece_if_calibrated_sd, 4),
            "reliability": [
                {
                    "decile": b.decile,
                    "customers": b.customers,
                    "mean_predicted": round(b.mean_predicted, 4),
                    "observed": round(b.observed, 4),
                }
                for b in self.reliability
            ],
        }


def forecast_quality(predicted: npt.ArrayLike, happened: npt.ArrayLike) -> ForecastQuality:
    """Score `predicted` probabilities against `happened` (booleans), one per customer."""
    p, y = _checked(predicted, happened)
    table = reliability_table(p, y)
    noise, noise_sd = ece_if_calibrated(p)
    return ForecastQuality(
        customers=int(p.size),
        mean_predicted=float(p.mean()),
        observed=float(y.mean()),
        roc_auc=roc_auc(p, y),
        brier=brier_score(p, y),
        ece=sum(b.customers * abs(b.mean_predicted - b.observed) for b in table) / p.size,
        reliability=table,
        ece_if_calibrated=noise,
        ece_if_calibrated_sd=noise_sd,
    )


def ece_if_calibrated(predicted: npt.ArrayLike) -> tuple[float, float]:
    """Mean and standard deviation of the decile ECE if the outcomes followed `predicted`.

    A decile's observed share is then a sum of independent Bernoulli draws around its mean
    prediction, with variance sum p(1-p) / n^2; by the normal approximation its expected
    absolute gap is that standard deviation times sqrt(2/pi), and the gaps of the deciles
    add up independently. No outcomes needed: this is the sampling-noise floor of the ECE.
    """
    p = _probabilities(predicted)
    decile = _deciles(p)
    counts = np.bincount(decile, minlength=DECILES).astype(np.float64)
    variance = np.bincount(decile, weights=p * (1 - p), minlength=DECILES)
    used = counts > 0
    # Weight n_k / N times the share's sd sqrt(variance) / n_k: sqrt(variance) / N.
    sd_gap = np.sqrt(variance[used]) / p.size
    mean = float(np.sqrt(2 / np.pi) * sd_gap.sum())
    sd = float(np.sqrt((1 - 2 / np.pi) * np.sum(sd_gap**2)))
    return mean, sd


def roc_auc(predicted: npt.ArrayLike, happened: npt.ArrayLike) -> float | None:
    """The chance a random customer with the event is ranked above one without (ties: half).

    None when only one outcome occurs: there is nothing to rank.
    """
    p, y = _checked(predicted, happened)
    positives = int(np.count_nonzero(y))
    negatives = int(y.size) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(p)  # average ranks: ties count half
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def brier_score(predicted: npt.ArrayLike, happened: npt.ArrayLike) -> float:
    """Mean squared gap between prediction and outcome (0 is perfect)."""
    p, y = _checked(predicted, happened)
    return float(np.mean((p - y) ** 2))


def reliability_table(
    predicted: npt.ArrayLike, happened: npt.ArrayLike
) -> tuple[ReliabilityBin, ...]:
    """Mean prediction and observed share per decile of the ranking (empty deciles left out)."""
    p, y = _checked(predicted, happened)
    decile = _deciles(p)
    counts = np.bincount(decile, minlength=DECILES)
    sum_p = np.bincount(decile, weights=p, minlength=DECILES)
    sum_y = np.bincount(decile, weights=y, minlength=DECILES)
    return tuple(
        ReliabilityBin(
            decile=k + 1,
            customers=int(counts[k]),
            mean_predicted=float(sum_p[k] / counts[k]),
            observed=float(sum_y[k] / counts[k]),
        )
        for k in range(DECILES)
        if counts[k]
    )


def _deciles(p: Floats) -> NDArray[np.int64]:
    """Each customer's decile (0-9) of the ranking; ties share the decile of their first rank."""
    first_rank = rankdata(p, method="min").astype(np.int64) - 1
    return np.asarray(np.minimum(first_rank * DECILES // p.size, DECILES - 1), dtype=np.int64)


def _probabilities(predicted: npt.ArrayLike) -> Floats:
    p = np.asarray(predicted, dtype=np.float64).ravel()
    if p.size == 0:
        raise ValueError("need at least one prediction")
    if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise ValueError("predictions must be probabilities in [0, 1]")
    return p


def _checked(predicted: npt.ArrayLike, happened: npt.ArrayLike) -> tuple[Floats, Floats]:
    p = _probabilities(predicted)
    y = np.asarray(happened, dtype=np.float64).ravel()
    if p.shape != y.shape:
        raise ValueError(f"need as many outcomes as predictions (> 0), got {p.size} and {y.size}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("outcomes must be 0/1 or booleans")
    return p, y
