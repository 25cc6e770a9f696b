"""Every customer's explanation of a score table: stored as its inputs, built when read.

:meth:`ScoreTable.explanation` reads one customer at a time; its JSON text (~1.3 KB, six
sentences) was a third of a full re-score's Python work and pushed each score row past
PostgreSQL's compression threshold. A score row keeps instead the figures the explanation is
made of (:func:`packed_explanations`: one row of float64s per customer, cut from one array per
chunk), and the API builds the explanation from them (:func:`explanation_of_packed`) with the
same reason functions (:mod:`health_reasons`, :mod:`satisfaction`). The tests prove every
built explanation equals ``table.explanation(i, models)``.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scoring_service.domain.health import COMPONENTS, HealthResult
from scoring_service.domain.health_reasons import component_reason
from scoring_service.domain.models import FittedModels
from scoring_service.domain.satisfaction import answer_mean_of, satisfaction_reason_of
from scoring_service.domain.scoring import ScoreTable

# Which customers: a slice, or an array of their indices.
Rows = slice | NDArray[np.int64]
# The input each component reads (satisfaction: the mean of the survey answers).
_READ = {
    "recency": "days_since_last_purchase",
    "frequency": "frequency_score",
    "spend_trend": "spend_trend",
    "churn_risk": "churn_risk",
    "engagement": "engagement_events_30d",
}
_OTHERS = tuple(c for c in COMPONENTS if c != "satisfaction")

# A packed explanation: the layout's number, then these figures as little-endian float64s
# (the model's ones repeated per row: a row explains itself whatever version is active later).
_LAYOUT = 1
_FIGURES = (
    "recency_days",
    "purchase_days",
    "total_spend",
    "x",
    "t_x",
    "T",
    "model_probability",
    "calibrated",
    "current_value_percentile",
    "potential_value_percentile",
    "value_score",
    "current_weight",
    "potential_weight",
    "split",
)
# The health index's part, in the order of `_health_columns`.
_HEALTH_FIGURES = (
    "rhythm_days",
    "own_rhythm_days",
    *(f"{c}_value" for c in _OTHERS),
    "latest_nps",
    "latest_csat",
    "complaints_90d",
    "unresolved_tickets",
    *(f"{c}_sub_score" for c in COMPONENTS),
    *(f"{c}_points" for c in COMPONENTS),
    *(f"{c}_weight" for c in COMPONENTS),
    "silence_limit_rhythms",
    "complaint_penalty",
    "open_ticket_penalty",
)
_ALL_FIGURES = (*_FIGURES, *_HEALTH_FIGURES)
_PACKING = struct.Struct(f"<B{len(_ALL_FIGURES)}d")
PACKED_SIZE = _PACKING.size


def explanation_figures(
    table: ScoreTable, models: FittedModels, rows: Rows = slice(None)
) -> NDArray[np.float64]:
    """The figures of the explanations of customers ``rows``: one row per customer, one column
    per name of the layout."""
    h, p, value, health = table.histories, table.predicted, table.value, table.health
    size = len(h.recency_days[rows])
    scorecard = models.value.scorecard

    def repeated(figure: float) -> NDArray[np.float64]:
        return np.full(size, figure, dtype=np.float64)

    columns = [
        h.recency_days[rows],
        h.purchase_days[rows],
        h.total_spend[rows],
        h.x[rows],
        h.t_x[rows],
        h.T[rows],
        p.churn_risk_uncalibrated[rows],
        repeated(1.0 if models.churn_calibration is not None else 0.0),
        value.current_pct[rows],
        value.potential_pct[rows],
        value.value_score[rows],
        repeated(scorecard.current_weight),
        repeated(scorecard.potential_weight),
        repeated(scorecard.split),
        *_health_columns(health, rows),
    ]
    return _stacked(columns, size)


def _stacked(columns: list[Any], size: int) -> NDArray[np.float64]:
    figures = np.empty((size, len(columns)), dtype="<f8")
    for j, column in enumerate(columns):
        figures[:, j] = column
    return figures


def packed_explanations(
    table: ScoreTable, models: FittedModels, rows: Rows = slice(None)
) -> list[bytes]:
    """The explanations of customers ``rows`` as stored: one `bytes` each, in order."""
    figures = explanation_figures(table, models, rows)
    data = figures.tobytes()
    width = figures.shape[1] * 8
    layout = bytes((_LAYOUT,))
    return [layout + data[start : start + width] for start in range(0, len(data), width)]


def explanation_of_packed(packed: bytes) -> dict[str, Any]:
    """``table.explanation(i, models)`` from the customer's packed figures."""
    layout, *figures = _PACKING.unpack(packed)
    if layout != _LAYOUT:
        raise ValueError(f"unknown explanation layout {layout}")
    f = dict(zip(_ALL_FIGURES, figures, strict=True))
    probability = f["model_probability"]
    return {
        "rfm": {
            "recency_days": f["recency_days"],
            "purchase_days": int(f["purchase_days"]),
            "total_spend": round(f["total_spend"], 2),
        },
        "model_inputs_weeks": {
            "x": f["x"],
            "t_x": round(f["t_x"], 4),
            "T": round(f["T"], 4),
        },
        "churn_risk": {
            "model_probability": None if math.isnan(probability) else round(probability, 6),
            "calibrated": f["calibrated"] == 1.0,
        },
        "health": _health_entries(f),
        "value": {
            "current_value_percentile": round(f["current_value_percentile"], 4),
            "potential_value_percentile": round(f["potential_value_percentile"], 4),
            "value_score": round(f["value_score"], 4),
            "weights": {
                "current_weight": f["current_weight"],
                "potential_weight": f["potential_weight"],
                "split": f["split"],
            },
        },
    }


def _health_entries(f: dict[str, float]) -> list[dict[str, Any]]:
    entries = []
    for component in COMPONENTS:
        if component == "satisfaction":
            nps, csat = f["latest_nps"], f["latest_csat"]
            value = answer_mean_of(nps, csat)
            reason = satisfaction_reason_of(
                nps,
                csat,
                f["complaints_90d"],
                f["unresolved_tickets"],
                f["complaint_penalty"],
                f["open_ticket_penalty"],
            )
        else:
            value = f[f"{component}_value"]
            reason = component_reason(
                component,
                value,
                f["rhythm_days"],
                f["own_rhythm_days"],
                f["silence_limit_rhythms"],
            )
        weight = f[f"{component}_weight"]
        entries.append(
            {
                "component": component,
                "value": value if math.isfinite(value) else None,
                "sub_score": f[f"{component}_sub_score"],
                "weight": weight,
                "points": f[f"{component}_points"],
                "max_points": 100.0 * weight,
                "reason": reason,
            }
        )
    return entries


def explanations(
    table: ScoreTable, models: FittedModels, rows: Rows = slice(None)
) -> list[dict[str, Any]]:
    """``table.explanation(i, models)`` for every customer ``i`` of ``rows`` (a slice or an
    array of indices), in order, through their packed form (as the API reads them)."""
    return [explanation_of_packed(packed) for packed in packed_explanations(table, models, rows)]


def _health_columns(health: HealthResult, rows: Rows) -> list[Any]:
    """The columns of `_HEALTH_FIGURES` for customers ``rows``."""
    inputs, curves = health.inputs, health.curves
    size = len(health.rhythm_days[rows])

    def repeated(figure: float) -> NDArray[np.float64]:
        return np.full(size, figure, dtype=np.float64)

    return [
        health.rhythm_days[rows],
        inputs["expected_interpurchase_days"][rows],
        *(inputs[_READ[c]][rows] for c in _OTHERS),
        inputs["latest_nps"][rows],
        inputs["latest_csat"][rows],
        np.nan_to_num(inputs["complaints_90d"][rows]),
        np.nan_to_num(inputs["unresolved_tickets"][rows]),
        *(health.sub_scores[c][rows] for c in COMPONENTS),
        *(health.contributions[c][rows] for c in COMPONENTS),
        *(repeated(health.weights.of(c)) for c in COMPONENTS),
        repeated(curves.silence_limit_rhythms),
        repeated(curves.complaint_penalty),
        repeated(curves.open_ticket_penalty),
    ]


def health_explanations(result: HealthResult, rows: Rows = slice(None)) -> list[list[Any]]:
    """``explain(result, i)`` for every customer ``i`` of ``rows``, in order, from the figures
    a packed explanation keeps."""
    figures = _stacked(_health_columns(result, rows), len(result.rhythm_days[rows]))
    return [
        _health_entries(dict(zip(_HEALTH_FIGURES, row, strict=True))) for row in figures.tolist()
    ]
