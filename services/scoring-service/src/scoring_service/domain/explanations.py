"""Every customer's explanation of a score table, built column by column.

:meth:`ScoreTable.explanation` reads one customer at a time (dozens of numpy scalar reads, a
``nan_to_num`` per customer); at a million customers that was a fifth of a full re-score.
Here each column is converted to Python floats once; the texts come from the same reason
functions (:mod:`health_reasons`, :mod:`satisfaction`). The tests prove every explanation
equals ``table.explanation(i, models)``.
"""

from __future__ import annotations

import math
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


def explanations(
    table: ScoreTable, models: FittedModels, rows: Rows = slice(None)
) -> list[dict[str, Any]]:
    """``table.explanation(i, models)`` for every customer ``i`` of ``rows`` (a slice or an
    array of indices), in order."""
    h, p, value = table.histories, table.predicted, table.value
    calibrated = models.churn_calibration is not None
    weights = models.value.scorecard.to_dict()
    columns = zip(
        h.recency_days[rows].tolist(),
        h.purchase_days[rows].tolist(),
        _rounded(h.total_spend[rows], 2),
        h.x[rows].tolist(),
        _rounded(h.t_x[rows], 4),
        _rounded(h.T[rows], 4),
        [None if math.isnan(v) else round(v, 6) for v in p.churn_risk_uncalibrated[rows].tolist()],
        health_explanations(table.health, rows),
        _rounded(value.current_pct[rows], 4),
        _rounded(value.potential_pct[rows], 4),
        _rounded(value.value_score[rows], 4),
        strict=True,
    )
    return [
        {
            "rfm": {"recency_days": recency, "purchase_days": days, "total_spend": spend},
            "model_inputs_weeks": {"x": x, "t_x": t_x, "T": age},
            "churn_risk": {"model_probability": probability, "calibrated": calibrated},
            "health": health,
            "value": {
                "current_value_percentile": current,
                "potential_value_percentile": potential,
                "value_score": score,
                "weights": dict(weights),
            },
        }
        for (
            recency,
            days,
            spend,
            x,
            t_x,
            age,
            probability,
            health,
            current,
            potential,
            score,
        ) in columns
    ]


def health_explanations(result: HealthResult, rows: Rows = slice(None)) -> list[list[Any]]:
    """``explain(result, i)`` for every customer ``i`` of ``rows``, in order."""
    inputs, curves = result.inputs, result.curves
    rhythm = result.rhythm_days[rows].tolist()
    own_rhythm = inputs["expected_interpurchase_days"][rows].tolist()
    per_component = []
    for component in COMPONENTS:
        if component == "satisfaction":
            satisfaction = _satisfaction_columns(result, rows)
            values = [answer_mean_of(nps, csat) for nps, csat, _, _ in satisfaction]
            reasons = [
                satisfaction_reason_of(
                    *answers, curves.complaint_penalty, curves.open_ticket_penalty
                )
                for answers in satisfaction
            ]
        else:
            values = inputs[_READ[component]][rows].tolist()
            reasons = [
                component_reason(component, v, r, own, curves.silence_limit_rhythms)
                for v, r, own in zip(values, rhythm, own_rhythm, strict=True)
            ]
        weight = result.weights.of(component)
        per_component.append(
            [
                {
                    "component": component,
                    "value": v if math.isfinite(v) else None,
                    "sub_score": sub,
                    "weight": weight,
                    "points": points,
                    "max_points": 100.0 * weight,
                    "reason": reason,
                }
                for v, sub, points, reason in zip(
                    values,
                    result.sub_scores[component][rows].tolist(),
                    result.contributions[component][rows].tolist(),
                    reasons,
                    strict=True,
                )
            ]
        )
    return [list(entries) for entries in zip(*per_component, strict=True)]


def _satisfaction_columns(
    result: HealthResult, rows: Rows
) -> list[tuple[float, float, float, float]]:
    inputs = result.inputs
    return list(
        zip(
            inputs["latest_nps"][rows].tolist(),
            inputs["latest_csat"][rows].tolist(),
            np.nan_to_num(inputs["complaints_90d"][rows]).tolist(),
            np.nan_to_num(inputs["unresolved_tickets"][rows]).tolist(),
            strict=True,
        )
    )


def _rounded(values: Any, digits: int) -> list[float]:
    # Python's round (correctly rounded), as ScoreTable.explanation's, not numpy's.
    return [round(v, digits) for v in values.tolist()]
