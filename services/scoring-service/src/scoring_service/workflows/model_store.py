"""Model versions: stored, listed, and the active one loaded for scoring."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring_service.api.schemas import ModelDetail, ModelSummary
from scoring_service.db.models import ModelVersion


async def all_versions(session: AsyncSession) -> list[ModelVersion]:
    """Every version, newest first."""
    return list(await session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


async def by_version(session: AsyncSession, version: str) -> ModelVersion | None:
    """One version by its name."""
    return await session.scalar(select(ModelVersion).where(ModelVersion.version == version))


async def active(session: AsyncSession) -> ModelVersion | None:
    """The newest version: the one scores are computed with."""
    return await session.scalar(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(1))


def summary(model: ModelVersion) -> ModelSummary:
    """A version as the API lists it."""
    return ModelSummary(
        version=model.version,
        created_at=model.created_at,
        as_of=model.as_of,
        customers=model.customers,
        fit_seconds=model.fit_seconds,
        bg_nbd=model.bg_nbd,
        gamma_gamma=model.gamma_gamma,
        churn_calibration=model.churn_calibration,
        notes=list(model.notes),
    )


def detail(model: ModelVersion) -> ModelDetail:
    """A version with its thresholds."""
    return ModelDetail(**summary(model).model_dump(), thresholds=model.thresholds)
