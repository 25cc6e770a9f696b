"""Response and request bodies of scoring-service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crm_contracts import EventTime, ScoreUpdated


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

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"as_of": "1997-09-30T00:00:00Z"}]}
    )

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
    notes: list[str]


class ModelDetail(ModelSummary):
    """A model version with the thresholds and segmentation it scores with."""

    thresholds: dict[str, Any]


class SegmentSize(BaseModel):
    """How many customers a segment holds."""

    name: str
    customers: int
    description: str | None = None


class SegmentsOverview(BaseModel):
    """RFM segments and behavioural clusters with their sizes and profiles."""

    model_version: str | None
    rfm_segments: list[SegmentSize]
    clusters: list[dict[str, Any]]
    value_tiers: list[SegmentSize]
    grades: list[SegmentSize]
