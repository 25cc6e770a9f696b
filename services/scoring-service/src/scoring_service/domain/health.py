"""Health index 0-100: how well the relationship with each customer is going, and why.

Six components each map one input to a sub-score between 0 and 1 with a simple curve; the index
is ``100 * sum(weight * sub_score)``, and each component's *contribution* (its weight times its
sub-score, in points) is kept, so the contributions add up to the score and a person can see
which component cost how many points (:func:`explain`).

The curves (parameters in :class:`HealthCurves`):

- recency vs rhythm: silence measured in the customer's own rhythm (expected days between
  purchases). 1 while the silence is within the rhythm, falling linearly to 0 at 3x the rhythm.
  Customers without a rhythm (one-time buyers, or a model that has not seen them) use the
  default rhythm, 90 days.
- frequency: the RFM frequency score 1-5 mapped linearly, 1 -> 0 and 5 -> 1.
- spend trend: spend of the last 90 days against the customer's average 90 days. Half the ratio,
  capped at 1: nothing spent -> 0, spending as usual -> 0.5, double the usual or more -> 1.
- churn risk: 1 - churn risk.
- engagement: activity events in the last 30 days. No activity gives 0.4, not 0, because many
  customers are simply not tracked (no app, no login), so silence there is weak evidence; the
  sub-score rises on a log scale to 1 at 10 events. Feedback is never engagement: a complaint
  is a customer talking, not a customer doing well (the caller counts activities only).
- satisfaction: what the customer told the shop. The most recent NPS and CSAT answers (0-10,
  averaged when both are known) divided by 10, neutral 0.5 when the customer never answered;
  minus ``complaint_penalty`` per complaint in the last 90 days and ``open_ticket_penalty``
  per support ticket still unresolved, floored at 0. Complaints only ever lower it.

Unknown inputs (NaN or None) are neutral: their sub-score is 0.5 (for spend trend that is
exactly "spending as usual"), so the index never becomes NaN. Invalid inputs (negative days,
a churn risk outside 0-1, a frequency score outside 1-5) raise :class:`InvalidHealthInput`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numpy.typing import NDArray

from scoring_service.domain.health_reasons import component_reason
from scoring_service.domain.satisfaction import (
    answer_mean,
    satisfaction_reason,
    satisfaction_sub_score,
)

__all__ = [
    "COMPONENTS",
    "HealthCurves",
    "HealthInputs",
    "HealthResult",
    "HealthWeights",
    "InvalidHealthInput",
    "explain",
    "health_index",
]

Floats = NDArray[np.float64]

# Component names, in the order results and explanations list them.
COMPONENTS: Final = (
    "recency",
    "frequency",
    "spend_trend",
    "churn_risk",
    "engagement",
    "satisfaction",
)
NEUTRAL: Final = 0.5
_WEIGHT_TOLERANCE: Final = 1e-6


class InvalidHealthInput(ValueError):
    """An input or parameter of the health index is out of range; the message names it."""


@dataclass(frozen=True)
class HealthWeights:
    """How much each component counts; non-negative and summing to 1."""

    recency: float = 0.25
    frequency: float = 0.15
    spend_trend: float = 0.15
    churn_risk: float = 0.25
    engagement: float = 0.10
    satisfaction: float = 0.10

    def __post_init__(self) -> None:
        values = self.to_dict()
        for name, weight in values.items():
            if not math.isfinite(weight) or weight < 0:
                raise InvalidHealthInput(f"weight {name} must be a number >= 0, got {weight}")
        total = sum(values.values())
        if abs(total - 1.0) > _WEIGHT_TOLERANCE:
            raise InvalidHealthInput(f"health weights must sum to 1, they sum to {total:g}")

    def of(self, component: str) -> float:
        """The weight of one component."""
        weight: float = getattr(self, component)
        return weight

    def to_dict(self) -> dict[str, float]:
        """A JSON-ready form."""
        return {component: float(getattr(self, component)) for component in COMPONENTS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthWeights:
        """The inverse of :meth:`to_dict`; a missing component keeps its default."""
        return cls(**{c: float(data[c]) for c in COMPONENTS if c in data})


@dataclass(frozen=True)
class HealthCurves:
    """The shape parameters of the sub-score curves (see the module docstring)."""

    default_rhythm_days: float = 90.0
    silence_limit_rhythms: float = 3.0
    engagement_floor: float = 0.4
    engagement_saturation_events: float = 10.0
    complaint_penalty: float = 0.2
    open_ticket_penalty: float = 0.1

    def __post_init__(self) -> None:
        if not self.default_rhythm_days > 0:
            raise InvalidHealthInput("default_rhythm_days must be > 0")
        if not self.silence_limit_rhythms > 1:
            raise InvalidHealthInput("silence_limit_rhythms must be > 1")
        if not 0 <= self.engagement_floor <= 1:
            raise InvalidHealthInput("engagement_floor must be between 0 and 1")
        if not self.engagement_saturation_events > 0:
            raise InvalidHealthInput("engagement_saturation_events must be > 0")
        for name in ("complaint_penalty", "open_ticket_penalty"):
            if not 0 <= getattr(self, name) <= 1:
                raise InvalidHealthInput(f"{name} must be between 0 and 1")

    def to_dict(self) -> dict[str, float]:
        """A JSON-ready form."""
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthCurves:
        """The inverse of :meth:`to_dict`; a missing parameter keeps its default."""
        return cls(**{f.name: float(data[f.name]) for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class HealthInputs:
    """The inputs, one value per customer (arrays of one length, or scalars, which broadcast).

    NaN or None means unknown: neutral for that component.
    """

    days_since_last_purchase: npt.ArrayLike | None
    expected_interpurchase_days: npt.ArrayLike | None
    frequency_score: npt.ArrayLike | None
    spend_trend: npt.ArrayLike | None
    churn_risk: npt.ArrayLike | None
    engagement_events_30d: npt.ArrayLike | None
    # Feedback (None: nothing known, as for a customer who never answered nor complained).
    latest_nps: npt.ArrayLike | None = None
    latest_csat: npt.ArrayLike | None = None
    complaints_90d: npt.ArrayLike | None = None
    unresolved_tickets: npt.ArrayLike | None = None

    def arrays(self) -> dict[str, Floats]:
        """Each input as a 1-D float array, all of one length (unknown = NaN), checked."""
        raw = {}
        for f in fields(self):
            try:
                raw[f.name] = np.atleast_1d(np.asarray(getattr(self, f.name), dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise InvalidHealthInput(f"{f.name}: not numeric ({exc})") from None
            if raw[f.name].ndim != 1:
                raise InvalidHealthInput(f"{f.name}: expected a scalar or a 1-D array")
        try:
            broadcast = np.broadcast_arrays(*raw.values())
        except ValueError:
            shapes = {name: array.shape for name, array in raw.items()}
            raise InvalidHealthInput(f"inputs must have one length, got {shapes}") from None
        arrays = dict(zip(raw, (np.array(a) for a in broadcast), strict=True))
        _check_range(arrays, "days_since_last_purchase", low=0.0)
        _check_range(arrays, "frequency_score", low=1.0, high=5.0)
        _check_range(arrays, "spend_trend", low=0.0)
        _check_range(arrays, "churn_risk", low=0.0, high=1.0)
        _check_range(arrays, "engagement_events_30d", low=0.0)
        _check_range(arrays, "latest_nps", low=0.0, high=10.0)
        _check_range(arrays, "latest_csat", low=0.0, high=10.0)
        _check_range(arrays, "complaints_90d", low=0.0)
        _check_range(arrays, "unresolved_tickets", low=0.0)
        return arrays

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (lists, unknown values as None)."""
        return {name: _json_floats(values) for name, values in self.arrays().items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthInputs:
        """The inverse of :meth:`to_dict`."""
        return cls(**{f.name: _floats(data[f.name]) for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class HealthResult:
    """The index of each customer, with each component's sub-score and contribution in points.

    ``inputs`` holds the checked input arrays and ``rhythm_days`` the rhythm each customer was
    measured against (the default where the model gave none), so :func:`explain` can say why.
    """

    score: Floats
    contributions: Mapping[str, Floats]
    sub_scores: Mapping[str, Floats]
    inputs: Mapping[str, Floats]
    rhythm_days: Floats
    weights: HealthWeights
    curves: HealthCurves

    def __len__(self) -> int:
        return len(self.score)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (lists; unknown inputs as None)."""
        return {
            "score": _json_floats(self.score),
            "contributions": {c: _json_floats(v) for c, v in self.contributions.items()},
            "sub_scores": {c: _json_floats(v) for c, v in self.sub_scores.items()},
            "inputs": {name: _json_floats(v) for name, v in self.inputs.items()},
            "rhythm_days": _json_floats(self.rhythm_days),
            "weights": self.weights.to_dict(),
            "curves": self.curves.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthResult:
        """The inverse of :meth:`to_dict`."""
        return cls(
            score=_floats(data["score"]),
            contributions={c: _floats(v) for c, v in data["contributions"].items()},
            sub_scores={c: _floats(v) for c, v in data["sub_scores"].items()},
            inputs={name: _floats(v) for name, v in data["inputs"].items()},
            rhythm_days=_floats(data["rhythm_days"]),
            weights=HealthWeights.from_dict(data["weights"]),
            curves=HealthCurves.from_dict(data["curves"]),
        )


def health_index(
    inputs: HealthInputs,
    weights: HealthWeights = HealthWeights(),
    curves: HealthCurves = HealthCurves(),
) -> HealthResult:
    """The health index of every customer in ``inputs``."""
    values = inputs.arrays()
    rhythm = values["expected_interpurchase_days"]
    rhythm = np.where(np.isfinite(rhythm) & (rhythm > 0), rhythm, curves.default_rhythm_days)
    sub_scores = {
        "recency": _recency_sub_score(values["days_since_last_purchase"], rhythm, curves),
        "frequency": _neutral_if_unknown((values["frequency_score"] - 1.0) / 4.0),
        "spend_trend": _neutral_if_unknown(np.minimum(values["spend_trend"] / 2.0, 1.0)),
        "churn_risk": _neutral_if_unknown(1.0 - values["churn_risk"]),
        "engagement": _engagement_sub_score(values["engagement_events_30d"], curves),
        "satisfaction": satisfaction_sub_score(
            values, curves.complaint_penalty, curves.open_ticket_penalty
        ),
    }
    contributions = {c: 100.0 * weights.of(c) * sub_scores[c] for c in COMPONENTS}
    score = np.zeros_like(rhythm)
    for component in COMPONENTS:
        score = score + contributions[component]
    return HealthResult(
        score=score,
        contributions=contributions,
        sub_scores=sub_scores,
        inputs=values,
        rhythm_days=rhythm,
        weights=weights,
        curves=curves,
    )


def explain(result: HealthResult, i: int) -> list[dict[str, Any]]:
    """Why customer ``i`` has its score: one entry per component, in :data:`COMPONENTS` order.

    Each entry: ``component``, ``value`` (the input read, None when unknown), ``sub_score``
    (0-1), ``weight``, ``points`` (the contribution), ``max_points`` and a short ``reason``.
    """
    if not -len(result) <= i < len(result):
        raise IndexError(f"customer {i} is not in this result of {len(result)} customers")
    read = {
        "recency": "days_since_last_purchase",
        "frequency": "frequency_score",
        "spend_trend": "spend_trend",
        "churn_risk": "churn_risk",
        "engagement": "engagement_events_30d",
        "satisfaction": "latest_nps",
    }
    entries = []
    for component in COMPONENTS:
        value = (
            answer_mean(result.inputs, i)
            if component == "satisfaction"
            else float(result.inputs[read[component]][i])
        )
        weight = result.weights.of(component)
        entries.append(
            {
                "component": component,
                "value": value if math.isfinite(value) else None,
                "sub_score": float(result.sub_scores[component][i]),
                "weight": weight,
                "points": float(result.contributions[component][i]),
                "max_points": 100.0 * weight,
                "reason": _reason(component, value, result, i),
            }
        )
    return entries


def _recency_sub_score(days: Floats, rhythm: Floats, curves: HealthCurves) -> Floats:
    # A silence of more rhythms than a float holds is as good as endless: inf clips to 0.
    with np.errstate(over="ignore"):
        silence_in_rhythms = days / rhythm
    limit = curves.silence_limit_rhythms
    decay = (limit - silence_in_rhythms) / (limit - 1.0)
    return _neutral_if_unknown(np.clip(decay, 0.0, 1.0))


def _engagement_sub_score(events: Floats, curves: HealthCurves) -> Floats:
    saturation = curves.engagement_saturation_events
    rise = np.minimum(np.log1p(events) / math.log1p(saturation), 1.0)
    floor = curves.engagement_floor
    return _neutral_if_unknown(floor + (1.0 - floor) * rise)


def _neutral_if_unknown(sub_score: Floats) -> Floats:
    known: Floats = np.where(np.isnan(sub_score), NEUTRAL, sub_score)
    return known


def _reason(component: str, value: float, result: HealthResult, i: int) -> str:
    if component == "satisfaction":
        curves = result.curves
        return satisfaction_reason(
            result.inputs, i, curves.complaint_penalty, curves.open_ticket_penalty
        )
    return component_reason(
        component,
        value,
        float(result.rhythm_days[i]),
        float(result.inputs["expected_interpurchase_days"][i]),
        result.curves.silence_limit_rhythms,
    )


def _check_range(
    arrays: Mapping[str, Floats], name: str, *, low: float, high: float = math.inf
) -> None:
    values = arrays[name]
    known = values[~np.isnan(values)]
    if np.any((known < low) | (known > high)):
        bounds = f">= {low:g}" if high == math.inf else f"between {low:g} and {high:g}"
        raise InvalidHealthInput(f"{name}: values must be {bounds} (or NaN when unknown)")


def _floats(values: Any) -> Floats:
    return np.array(
        [np.nan if v is None else v for v in np.atleast_1d(np.asarray(values, dtype=object))],
        dtype=np.float64,
    )


def _json_floats(values: Floats) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in values.tolist()]
