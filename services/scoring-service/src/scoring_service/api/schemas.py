"""Response and request bodies of scoring-service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from crm_contracts import EventTime, Money, ScoreUpdated
from crm_shared import request_body_config


class CustomerScores(BaseModel):
    """A customer's latest scores and why they are what they are."""

    customer_id: str
    as_of: datetime
    model_version: str | None
    scores: ScoreUpdated
    explanation: dict[str, Any] = Field(
        description="RFM thresholds used, health index components, value scorecard."
    )


class FitRequest(BaseModel):
    """Fit the models on the purchases known up to `as_of`, then re-score everyone."""

    model_config = request_body_config({"as_of": "1997-09-30T00:00:00Z"})

    as_of: EventTime | None = Field(default=None, description="Defaults to now.")


class ModelSummary(BaseModel):
    """A fitted model version."""

    version: str
    created_at: datetime
    as_of: datetime
    customers: int
    fit_seconds: float
    bg_nbd: dict[str, Any]
    gamma_gamma: dict[str, Any] | None
    churn_calibration: dict[str, Any] | None = Field(
        default=None,
        description=(
            "How the published churn risk is calibrated: the silence curves (one-time and repeat"
            " buyers; `customers` counts a customer once per split), the time splits they were"
            " fitted on (the longest, `split_horizon_days` after `split_as_of_day`, pooled with"
            " the shorter `pooled_split_horizons_days` ending on the same day), and the figures"
            " on the longest split before and after calibration (ROC AUC, Brier score, expected"
            " calibration error over deciles, `ece_if_calibrated` +- `ece_if_calibrated_sd`: the"
            " ECE sampling noise alone gives a perfectly calibrated forecast, and a reliability"
            " table per decile; cross-fitted), and `used`: whether scores apply it (not when it"
            " scored a worse Brier than the model on the split). Null: nothing could be fitted"
            " (history too short or base too small), the notes say why."
        ),
        examples=[
            {
                "method": "gamma-Poisson silence curve of the expected purchases, by buyer type",
                "split_as_of_day": 9998,
                "split_horizon_days": 136,
                "churn_horizon_days": 273,
                "pooled_split_horizons_days": [136, 102, 68],
                "used": True,
                "one_time_buyers": {
                    "rate_scale": 0.958,
                    "dispersion_shape": 0.637,
                    "customers": 4783,
                },
                "repeat_buyers": {
                    "rate_scale": 1.409,
                    "dispersion_shape": 0.752,
                    "customers": 2288,
                },
                "on_split": {
                    "uncalibrated": {
                        "customers": 2357,
                        "mean_predicted": 0.7115,
                        "observed": 0.7548,
                        "roc_auc": 0.7082,
                        "brier": 0.1615,
                        "ece": 0.044,
                        "ece_if_calibrated": 0.0212,
                        "ece_if_calibrated_sd": 0.0051,
                        "reliability": [
                            {
                                "decile": 1,
                                "customers": 236,
                                "mean_predicted": 0.2204,
                                "observed": 0.3814,
                            }
                        ],
                    },
                    "calibrated": {
                        "customers": 2357,
                        "mean_predicted": 0.7498,
                        "observed": 0.7548,
                        "roc_auc": 0.7098,
                        "brier": 0.1595,
                        "ece": 0.0211,
                        "ece_if_calibrated": 0.0206,
                        "ece_if_calibrated_sd": 0.005,
                        "reliability": [
                            {
                                "decile": 1,
                                "customers": 236,
                                "mean_predicted": 0.3576,
                                "observed": 0.3814,
                            }
                        ],
                    },
                },
            }
        ],
    )
    notes: list[str]


class ModelDetail(ModelSummary):
    """A model version with the thresholds and segmentation it scores with."""

    thresholds: dict[str, Any]


class SegmentSize(BaseModel):
    """How many customers a segment holds."""

    name: str
    customers: int
    description: str | None = None


class RfmSegmentSize(SegmentSize):
    """An RFM segment's size and what its customers have spent, net of refunds."""

    revenue: list[Money] = Field(
        description=(
            "The segment's customers' total spend to date (each score's `total_spend`, net of"
            " refunds), summed per currency, largest first."
        ),
        examples=[[{"amount": "48210.35", "currency": "USD"}]],
    )


class SegmentsOverview(BaseModel):
    """RFM segments and behavioural clusters with their sizes and profiles."""

    model_version: str | None
    rfm_segments: list[RfmSegmentSize]
    clusters: list[dict[str, Any]]
    value_tiers: list[SegmentSize]
    grades: list[SegmentSize]
