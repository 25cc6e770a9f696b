"""How good a probability forecast is: ranking (ROC AUC), accuracy (Brier), calibration (ECE).

All figures compare predicted probabilities of an event (here: a customer stays silent over
the churn horizon) with what happened, vectorised over any number of customers.

The reliability table cuts the customers into ten groups by predicted probability (deciles of
the ranking) and shows, per group, the mean prediction beside the observed share. Customers
with the same prediction always fall into the same group (a group starts at the rank of the
first of them), so the table does not depend on the order of ties. The expected calibration
error (ECE) is the customer-weighted mean gap between the two columns. With about 240
customers per decile, as on the CDNOW sample, sampling noise alone moves each observed share
by about 0.02-0.03, so an ECE near 0.02 is near what a perfect forecast shows on such a base.
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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (figures rounded to 4 decimals)."""
        return {
            "customers": self.customers,
            "mean_predicted": round(self.mean_predicted, 4),
            "observed": round(self.observed, 4),
            "roc_auc": None if self.roc_auc is None else round(self.roc_auc, 4),
            "brier": round(self.brier, 4),
            "ece": round(self.ece, 4),
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
    return ForecastQuality(
        customers=int(p.size),
        mean_predicted=float(p.mean()),
        observed=float(y.mean()),
        roc_auc=roc_auc(p, y),
        brier=brier_score(p, y),
        ece=sum(b.customers * abs(b.mean_predicted - b.observed) for b in table) / p.size,
        reliability=table,
    )


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
    first_rank = rankdata(p, method="min").astype(np.int64) - 1
    decile = np.minimum(first_rank * DECILES // p.size, DECILES - 1)
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


def _checked(predicted: npt.ArrayLike, happened: npt.ArrayLike) -> tuple[Floats, Floats]:
    p = np.asarray(predicted, dtype=np.float64).ravel()
    y = np.asarray(happened, dtype=np.float64).ravel()
    if p.size == 0 or p.shape != y.shape:
        raise ValueError(f"need as many outcomes as predictions (> 0), got {p.size} and {y.size}")
    if not (np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))):
        raise ValueError("predictions must be probabilities in [0, 1]")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("outcomes must be 0/1 or booleans")
    return p, y
