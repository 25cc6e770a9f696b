"""Model versions: stored, listed, and the active one loaded for scoring."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scoring_service.db.models import ModelVersion
from scoring_service.domain.models import FittedModels


async def all_versions(session: AsyncSession) -> list[ModelVersion]:
    """Every version, newest first."""
    return list(await session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())))


async def by_version(session: AsyncSession, version: str) -> ModelVersion | None:
    """One version by its name."""
    return await session.scalar(select(ModelVersion).where(ModelVersion.version == version))


async def active(session: AsyncSession) -> ModelVersion | None:
    """The newest version: the one scores are computed with."""
    return await session.scalar(select(ModelVersion).order_by(ModelVersion.id.desc()).limit(1))


# Fitted models by version name: a stored version never changes, and reading and parsing its
# thresholds (~30 KB of JSON) for every pending re-score batch was work repeated for nothing.
_MODELS: dict[str, FittedModels] = {}
_MODELS_KEPT = 4


async def active_models(session: AsyncSession) -> tuple[str, FittedModels] | None:
    """The active version's name and its fitted models (parsed once per process)."""
    name = await session.scalar(
        select(ModelVersion.version).order_by(ModelVersion.id.desc()).limit(1)
    )
    if name is None:
        return None
    models = _MODELS.get(name)
    if models is None:
        version = await by_version(session, name)
        if version is None:  # gone since (a test database reset): nothing to score with
            return None
        models = FittedModels.from_stored(
            version.bg_nbd, version.gamma_gamma, version.thresholds, version.churn_calibration
        )
        while len(_MODELS) >= _MODELS_KEPT:
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[name] = models
    return name, models
