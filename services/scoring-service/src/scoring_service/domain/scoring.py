"""Scoring a customer base with fitted models: every figure of a `score.updated`, vectorised."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scoring_service.domain.health import HealthInputs, HealthResult, explain, health_index
from scoring_service.domain.models import FittedModels
from scoring_service.domain.predictions import Predictions, ScoringPolicy, predictions
from scoring_service.domain.purchase_history import CustomerHistories, Floats
from scoring_service.domain.rfm import rfm_caveat, rfm_segment, score_rfm
from scoring_service.domain.segments import assign_segments
from scoring_service.domain.tiers import ValueScores, score_value

Ints = NDArray[np.int64]


@dataclass(frozen=True)
class ScoreTable:
    """Scores of many customers as parallel arrays, aligned with `histories.customer`."""

    histories: CustomerHistories
    predicted: Predictions
    recency_score: Ints
    frequency_score: Ints
    monetary_score: Ints
    rfm_segment: NDArray[np.str_]
    value: ValueScores
    cluster: NDArray[np.str_]
    health: HealthResult
    # Why the RFM scores are provisional (a base too small or uniform for quintiles), or None.
    rfm_caveat: str | None = None

    def __len__(self) -> int:
        return len(self.histories)

    def explanation(self, i: int, models: FittedModels) -> dict[str, Any]:
        """Why customer `i` scores as it does, for a person reading the API."""
        return {
            # The cut points these are scored against are in the model version's thresholds.
            "rfm": {
                "recency_days": float(self.histories.recency_days[i]),
                "purchase_days": int(self.histories.purchase_days[i]),
                "total_spend": round(float(self.histories.total_spend[i]), 2),
            },
            "model_inputs_weeks": {
                "x": float(self.histories.x[i]),
                "t_x": round(float(self.histories.t_x[i]), 4),
                "T": round(float(self.histories.T[i]), 4),
            },
            "churn_risk": {
                # The model's exp(-E[purchases]) before calibration, and whether it was calibrated.
                "model_probability": _optional(self.predicted.churn_risk_uncalibrated[i]),
                "calibrated": models.churn_calibration is not None,
            },
            "health": explain(self.health, i),
            "value": {
                "current_value_percentile": round(float(self.value.current_pct[i]), 4),
                "potential_value_percentile": round(float(self.value.potential_pct[i]), 4),
                "value_score": round(float(self.value.value_score[i]), 4),
                "weights": models.value.scorecard.to_dict(),
            },
        }


def score_histories(
    histories: CustomerHistories,
    models: FittedModels,
    policy: ScoringPolicy,
    engagement_events_30d: Floats,
    feedback: Mapping[str, Floats] | None = None,
) -> ScoreTable:
    """Score every customer of `histories` with `models` (no fitting happens here).

    `feedback`: the satisfaction inputs of the health index (``latest_nps``, ``latest_csat``,
    ``complaints_90d``, ``unresolved_tickets``), aligned with the customers; None: none known.
    """
    predicted = predictions(
        histories, models.bg_nbd, models.gamma_gamma, policy, models.churn_calibration
    )
    frequency = histories.purchase_days.astype(np.float64)
    r, f, m = score_rfm(models.rfm, histories.recency_days, frequency, histories.total_spend)
    r, f, m = np.atleast_1d(r), np.atleast_1d(f), np.atleast_1d(m)
    clv = np.where(np.isnan(predicted.predicted_clv), 0.0, predicted.predicted_clv)
    value = score_value(models.value, histories.spend_12m, clv)
    cluster_ids = assign_segments(
        models.segmentation, histories.recency_days, frequency, histories.total_spend
    )
    names = np.array([c.name for c in models.segmentation.clusters], dtype=np.str_)
    health = health_index(
        HealthInputs(
            days_since_last_purchase=histories.recency_days,
            expected_interpurchase_days=predicted.expected_interpurchase_days,
            frequency_score=f.astype(np.float64),
            spend_trend=histories.spend_trend,
            churn_risk=predicted.churn_risk,
            engagement_events_30d=engagement_events_30d,
            **(feedback or {}),
        )
    )
    return ScoreTable(
        histories=histories,
        predicted=predicted,
        recency_score=r.astype(np.int64),
        frequency_score=f.astype(np.int64),
        monetary_score=m.astype(np.int64),
        rfm_segment=np.atleast_1d(rfm_segment(r, f)),
        value=value,
        cluster=names[cluster_ids] if len(names) else np.full(len(histories), "", dtype=np.str_),
        health=health,
        rfm_caveat=rfm_caveat(models.rfm),
    )


_PROBABILITIES = ("p_alive", "churn_risk")
_QUANTITIES = (
    "expected_purchases_30d",
    "expected_purchases_90d",
    "expected_purchases_365d",
    "expected_interpurchase_days",
    "health_index",
)
_IGNORED = {"as_of", "model_version", *_PROBABILITIES, *_QUANTITIES}


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


def changed_beyond_tolerance(
    previous: dict[str, Any] | None, current: dict[str, Any], tolerance: float
) -> bool:
    """Whether a re-score says something new: a probability moved more than `tolerance`, a
    quantity more than `tolerance` relative (health: points), or anything else changed."""
    if previous is None:
        return True
    for name in _PROBABILITIES:
        if _moved(previous.get(name), current.get(name), tolerance):
            return True
    for name in _QUANTITIES:
        scale = 100.0 if name == "health_index" else max(1.0, abs(previous.get(name) or 0.0))
        if _moved(previous.get(name), current.get(name), tolerance * scale):
            return True
    return any(previous.get(k) != v for k, v in current.items() if k not in _IGNORED)


def _moved(before: float | None, after: float | None, tolerance: float) -> bool:
    if before is None or after is None:
        return before is not after
    return abs(after - before) > tolerance
