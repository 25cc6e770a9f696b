"""Response bodies built from the rows and values the workflows return."""

from __future__ import annotations

from typing import Any

from crm_contracts import ScoreUpdated
from scoring_service.api.schemas import (
    CustomerScores,
    ModelDetail,
    ModelSummary,
    RfmSegmentSize,
    SegmentSize,
    SegmentsOverview,
)
from scoring_service.db.models import ModelVersion, Score
from scoring_service.domain.explanations import explanation_of_packed
from scoring_service.domain.rfm import SEGMENT_DESCRIPTIONS
from scoring_service.workflows.score_queries import SegmentCounts


def customer_scores(row: Score) -> CustomerScores:
    """A stored scores row as the API shows it (the payload is the published event)."""
    return CustomerScores(
        customer_id=row.customer_id,
        as_of=row.as_of,
        model_version=row.model_version,
        scores=ScoreUpdated.model_validate(row.payload),
        explanation=explanation_of(row),
    )


def explanation_of(row: Score) -> dict[str, Any]:
    """The row's explanation: built from its figures, or the text stored before figures were."""
    if row.explanation_figures is not None:
        return explanation_of_packed(bytes(row.explanation_figures))
    return row.explanation or {}


def model_summary(model: ModelVersion) -> ModelSummary:
    """A version as the API lists it."""
    return ModelSummary.model_validate(model, from_attributes=True)


def model_detail(model: ModelVersion) -> ModelDetail:
    """A version with its thresholds."""
    return ModelDetail.model_validate(model, from_attributes=True)


def segments_overview(counts: SegmentCounts) -> SegmentsOverview:
    """Segment sizes with their descriptions and RFM revenue, and the model's cluster profiles."""
    model = counts.model
    clusters = (model.thresholds.get("segmentation") or {}).get("clusters", []) if model else []
    return SegmentsOverview(
        model_version=model.version if model else None,
        rfm_segments=[
            RfmSegmentSize(
                name=n,
                customers=c,
                description=SEGMENT_DESCRIPTIONS.get(n),
                revenue=counts.rfm_revenue.get(n, []),
            )
            for n, c in counts.rfm_segments
        ],
        clusters=[
            {**profile, "customers": counts.clusters.get(profile.get("name", ""), 0)}
            for profile in clusters
        ],
        value_tiers=[SegmentSize(name=n, customers=c) for n, c in counts.value_tiers],
        grades=[SegmentSize(name=n, customers=c) for n, c in counts.grades],
    )
