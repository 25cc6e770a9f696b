"""Model versions: stored, listed, and the active one loaded for scoring."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

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
