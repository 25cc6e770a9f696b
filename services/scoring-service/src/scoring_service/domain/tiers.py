"""Value tiers and grades: what each customer is worth now and may be worth next year.

Two measures, each turned into a percentile (0-1) over the customer base:

- current value: spend in the last 12 months;
- potential value: the predicted 12-month CLV.

The tier is the quadrant of the two percentiles against ``split`` (high means at or above it):
"strategic_partner" (high current, high potential), "growth" (low current, high potential),
"profit" (high current, low potential), "basic" (low, low). The value score is the weighted sum
``current_weight * current_pct + potential_weight * potential_pct``; the grade cuts the base's
value scores into "vip" (top 5 %), "high" (next 15 %), "medium" (next 30 %) and "low" (the rest).

:func:`fit_value_thresholds` stores a quantile grid (1,001 points) of each measure and the grade
cut points on each refit; :func:`score_value` applies them to any customer between refits, so
scoring the fitted base again gives the same answer as the refit.

Ties and edge cases, decided deterministically:

- A percentile is the share of the base *strictly below* the value (interpolated between grid
  points), so identical values share one percentile, the lowest of their block.
- A grade needs a value score strictly above its cut point, so a grade is never over-awarded:
  a block of equal scores straddling a cut takes the lower grade.
- Customers with no spend in the last 12 months (zero, or negative after refunds) are "basic"
  and "low" with a value score of 0, whatever their predicted CLV: a prediction without recent
  spend is not value to manage yet.
- An unknown predicted CLV (NaN) earns no potential: its percentile is 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

__all__ = [
    "GRADES",
    "TIERS",
    "GradeCuts",
    "InvalidValueInput",
    "PercentileGrid",
    "ValueScorecard",
    "ValueScores",
    "ValueThresholds",
    "fit_percentile_grid",
    "fit_value_thresholds",
    "grade",
    "percentile_of",
    "score_value",
    "value_score",
    "value_tier",
]

Floats = NDArray[np.float64]
Names = NDArray[np.str_]

TIERS: Final = ("strategic_partner", "growth", "profit", "basic")
GRADES: Final = ("vip", "high", "medium", "low")
_WEIGHT_TOLERANCE: Final = 1e-6
_TIER_LOOKUP: Final = np.array(
    # [current is high][potential is high]
    [["basic", "growth"], ["profit", "strategic_partner"]],
    dtype=np.str_,
)


class InvalidValueInput(ValueError):
    """A value measure or scorecard parameter is unusable; the message names it."""


@dataclass(frozen=True)
class ValueScorecard:
    """How current and potential value combine, and where "high" starts for the tiers."""

    current_weight: float = 0.6
    potential_weight: float = 0.4
    split: float = 0.5

    def __post_init__(self) -> None:
        for name in ("current_weight", "potential_weight"):
            weight = getattr(self, name)
            if not math.isfinite(weight) or weight < 0:
                raise InvalidValueInput(f"{name} must be a number >= 0, got {weight}")
        total = self.current_weight + self.potential_weight
        if abs(total - 1.0) > _WEIGHT_TOLERANCE:
            raise InvalidValueInput(f"scorecard weights must sum to 1, they sum to {total:g}")
        if not 0 < self.split < 1:
            raise InvalidValueInput(f"split must be strictly between 0 and 1, got {self.split}")

    def to_dict(self) -> dict[str, float]:
        """A JSON-ready form."""
        return {
            "current_weight": self.current_weight,
            "potential_weight": self.potential_weight,
            "split": self.split,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValueScorecard:
        """The inverse of :meth:`to_dict`."""
        return cls(
            current_weight=float(data["current_weight"]),
            potential_weight=float(data["potential_weight"]),
            split=float(data["split"]),
        )


@dataclass(frozen=True)
class GradeCuts:
    """Share of the base in each grade from the top; "low" is the rest."""

    vip: float = 0.05
    high: float = 0.15
    medium: float = 0.30

    def __post_init__(self) -> None:
        for name in ("vip", "high", "medium"):
            share = getattr(self, name)
            if not 0 <= share <= 1:
                raise InvalidValueInput(f"grade share {name} must be between 0 and 1, got {share}")
        if self.vip + self.high + self.medium > 1 + _WEIGHT_TOLERANCE:
            raise InvalidValueInput("grade shares vip + high + medium must not exceed 1")

    def to_dict(self) -> dict[str, float]:
        """A JSON-ready form."""
        return {"vip": self.vip, "high": self.high, "medium": self.medium}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GradeCuts:
        """The inverse of :meth:`to_dict`."""
        return cls(vip=float(data["vip"]), high=float(data["high"]), medium=float(data["medium"]))


@dataclass(frozen=True)
class PercentileGrid:
    """Quantiles of one measure over the base: ``points[j]`` is the ``j / (len - 1)`` quantile."""

    points: tuple[float, ...]

    def __post_init__(self) -> None:
        points = np.asarray(self.points, dtype=np.float64)
        if points.ndim != 1 or len(points) < 2 or not np.all(np.isfinite(points)):
            raise InvalidValueInput("a percentile grid needs at least two finite points")
        if np.any(np.diff(points) < 0):
            raise InvalidValueInput("percentile grid points must be ascending")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {"points": list(self.points)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PercentileGrid:
        """The inverse of :meth:`to_dict`."""
        return cls(points=tuple(float(p) for p in data["points"]))


@dataclass(frozen=True)
class ValueThresholds:
    """Everything fitted on the base that scoring a customer between refits needs.

    ``score_cuts`` are the value scores to beat for "vip", "high" and "medium", in that order.
    """

    scorecard: ValueScorecard
    grade_cuts: GradeCuts
    current: PercentileGrid
    potential: PercentileGrid
    score_cuts: tuple[float, float, float]
    customers: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {
            "scorecard": self.scorecard.to_dict(),
            "grade_cuts": self.grade_cuts.to_dict(),
            "current": self.current.to_dict(),
            "potential": self.potential.to_dict(),
            "score_cuts": list(self.score_cuts),
            "customers": self.customers,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValueThresholds:
        """The inverse of :meth:`to_dict`."""
        vip, high, medium = (float(cut) for cut in data["score_cuts"])
        return cls(
            scorecard=ValueScorecard.from_dict(data["scorecard"]),
            grade_cuts=GradeCuts.from_dict(data["grade_cuts"]),
            current=PercentileGrid.from_dict(data["current"]),
            potential=PercentileGrid.from_dict(data["potential"]),
            score_cuts=(vip, high, medium),
            customers=int(data["customers"]),
        )


@dataclass(frozen=True)
class ValueScores:
    """Per customer: both percentiles, the value score, the tier and the grade."""

    current_pct: Floats
    potential_pct: Floats
    value_score: Floats
    tier: Names
    grade: Names

    def __len__(self) -> int:
        return len(self.value_score)

    def to_dict(self) -> dict[str, list[Any]]:
        """A JSON-ready form (lists)."""
        return {
            "current_pct": self.current_pct.tolist(),
            "potential_pct": self.potential_pct.tolist(),
            "value_score": self.value_score.tolist(),
            "tier": self.tier.tolist(),
            "grade": self.grade.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValueScores:
        """The inverse of :meth:`to_dict`."""
        return cls(
            current_pct=np.asarray(data["current_pct"], dtype=np.float64),
            potential_pct=np.asarray(data["potential_pct"], dtype=np.float64),
            value_score=np.asarray(data["value_score"], dtype=np.float64),
            tier=np.asarray(data["tier"], dtype=np.str_),
            grade=np.asarray(data["grade"], dtype=np.str_),
        )


def fit_percentile_grid(values: npt.ArrayLike, points: int = 1001) -> PercentileGrid:
    """The quantile grid of ``values``, ignoring NaN; a grid of zeros when no value is known."""
    if points < 2:
        raise InvalidValueInput("a percentile grid needs at least two points")
    array = np.asarray(values, dtype=np.float64).ravel()
    known = array[~np.isnan(array)]
    if np.any(np.isinf(known)):
        raise InvalidValueInput("values must be finite (NaN means unknown)")
    if known.size == 0:
        return PercentileGrid(points=(0.0,) * points)
    grid = np.quantile(known, np.linspace(0.0, 1.0, points))
    return PercentileGrid(points=tuple(float(p) for p in np.maximum.accumulate(grid)))


def percentile_of(grid: PercentileGrid, values: npt.ArrayLike) -> Floats:
    """Share of the fitted base strictly below each value (0-1); NaN stays NaN.

    Between two grid points the share is interpolated linearly; equal values get equal shares,
    the lowest of their block (e.g. every zero-spend customer gets 0 when spend >= 0).
    """
    points = np.asarray(grid.points, dtype=np.float64)
    array = np.asarray(values, dtype=np.float64)
    steps = len(points) - 1
    above = np.searchsorted(points, array, side="left")  # grid points strictly below the value
    lower = points[np.clip(above - 1, 0, steps)]
    upper = points[np.clip(above, 0, steps)]
    gap = upper - lower
    fraction = np.divide(array - lower, gap, out=np.zeros_like(gap), where=gap > 0)
    share = (above - 1 + fraction) / steps
    share = np.where(above == 0, 0.0, np.where(above > steps, 1.0, share))
    result: Floats = np.where(np.isnan(array), np.nan, np.clip(share, 0.0, 1.0))
    return result


def value_score(
    current_pct: npt.ArrayLike, potential_pct: npt.ArrayLike, scorecard: ValueScorecard
) -> Floats:
    """The weighted value score 0-1 (unknown potential counts as 0)."""
    current = np.nan_to_num(np.asarray(current_pct, dtype=np.float64), nan=0.0)
    potential = np.nan_to_num(np.asarray(potential_pct, dtype=np.float64), nan=0.0)
    score: Floats = scorecard.current_weight * current + scorecard.potential_weight * potential
    return score


def value_tier(current_pct: npt.ArrayLike, potential_pct: npt.ArrayLike, split: float) -> Names:
    """The tier of each customer: the quadrant of the two percentiles (high = at or above split).

    An unknown (NaN) percentile counts as low.
    """
    current_high = np.asarray(current_pct, dtype=np.float64) >= split
    potential_high = np.asarray(potential_pct, dtype=np.float64) >= split
    return np.asarray(_TIER_LOOKUP[current_high.astype(np.intp), potential_high.astype(np.intp)])


def grade(value_score: npt.ArrayLike, thresholds: ValueThresholds) -> Names:
    """The grade of each value score against the cut points fitted on the base."""
    scores = np.asarray(value_score, dtype=np.float64)
    # The cut points descend (vip, high, medium); beating k of them means grade index 3 - k.
    beaten = sum((scores > cut).astype(np.intp) for cut in thresholds.score_cuts)
    return np.asarray(np.array(GRADES, dtype=np.str_)[3 - np.asarray(beaten, dtype=np.intp)])


def fit_value_thresholds(
    spend_12m: npt.ArrayLike,
    predicted_clv: npt.ArrayLike,
    scorecard: ValueScorecard = ValueScorecard(),
    grade_cuts: GradeCuts = GradeCuts(),
    *,
    grid_points: int = 1001,
) -> ValueThresholds:
    """Fit the percentile grids and the grade cut points on the current base."""
    spend, clv = _measures(spend_12m, predicted_clv)
    if spend.size == 0:
        raise InvalidValueInput("cannot fit value thresholds on an empty customer base")
    current = fit_percentile_grid(spend, grid_points)
    potential = fit_percentile_grid(clv, grid_points)
    provisional = ValueThresholds(
        scorecard=scorecard,
        grade_cuts=grade_cuts,
        current=current,
        potential=potential,
        score_cuts=(math.inf, math.inf, math.inf),
        customers=int(spend.size),
    )
    # Cut the scores exactly as scoring will compute them, so the refit and incremental scoring
    # of the same customers agree. Inverted-CDF quantiles are observed scores: beating one
    # leaves at most the intended share above it.
    scores = _scores(provisional, spend, clv)[2]
    tops = (
        grade_cuts.vip,
        grade_cuts.vip + grade_cuts.high,
        grade_cuts.vip + grade_cuts.high + grade_cuts.medium,
    )
    levels = np.clip(1.0 - np.array(tops), 0.0, 1.0)
    vip, high, medium = (float(c) for c in np.quantile(scores, levels, method="inverted_cdf"))
    return ValueThresholds(
        scorecard=scorecard,
        grade_cuts=grade_cuts,
        current=current,
        potential=potential,
        score_cuts=(vip, high, medium),
        customers=int(spend.size),
    )


def score_value(
    thresholds: ValueThresholds, spend_12m: npt.ArrayLike, predicted_clv: npt.ArrayLike
) -> ValueScores:
    """Percentiles, value score, tier and grade of each customer, against fitted thresholds."""
    spend, clv = _measures(spend_12m, predicted_clv)
    current_pct, potential_pct, score, no_spend = _scores(thresholds, spend, clv)
    tier = value_tier(current_pct, potential_pct, thresholds.scorecard.split)
    tier[no_spend] = "basic"
    graded = grade(score, thresholds)
    graded[no_spend] = "low"
    return ValueScores(
        current_pct=current_pct,
        potential_pct=potential_pct,
        value_score=score,
        tier=tier,
        grade=graded,
    )


def _measures(spend_12m: npt.ArrayLike, predicted_clv: npt.ArrayLike) -> tuple[Floats, Floats]:
    spend = np.atleast_1d(np.asarray(spend_12m, dtype=np.float64))
    clv = np.atleast_1d(np.asarray(predicted_clv, dtype=np.float64))
    if spend.ndim != 1 or spend.shape != clv.shape:
        raise InvalidValueInput(
            f"spend_12m and predicted_clv must be 1-D of one length, got {spend.shape}, {clv.shape}"
        )
    if not np.all(np.isfinite(spend)):
        raise InvalidValueInput("spend_12m: every value must be a finite number")
    if np.any(np.isinf(clv)):
        raise InvalidValueInput("predicted_clv: values must be finite (NaN means unknown)")
    return spend, clv


def _scores(
    thresholds: ValueThresholds, spend: Floats, clv: Floats
) -> tuple[Floats, Floats, Floats, NDArray[np.bool_]]:
    no_spend = spend <= 0
    current_pct = np.where(no_spend, 0.0, percentile_of(thresholds.current, spend))
    potential_pct = np.nan_to_num(percentile_of(thresholds.potential, clv), nan=0.0)
    score = np.where(no_spend, 0.0, value_score(current_pct, potential_pct, thresholds.scorecard))
    return current_pct, potential_pct, score, no_spend
