"""How far the review of every buyer under one rules version has come (``rules_reviews``).

Each walk commits its position with the chunk's last transaction, so a sweep that stops
resumes there; a completed review is not walked again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from lifecycle_service.db.models import RulesReview


async def resume_point(
    session: AsyncSession, version: int, started_at: datetime
) -> RulesReview | None:
    """The progress of the review of ``version`` (started now if new); None when completed."""
    progress = await session.get(RulesReview, version)
    if progress is None:
        progress = RulesReview(rules_version=version, started_at=started_at, reviewed=0)
        session.add(progress)
        return progress
    return None if progress.completed_at is not None else progress


async def advance(
    session: AsyncSession,
    version: int,
    reviewed: int,
    *,
    last_customer_id: str | None = None,
    walk_position: str | None = None,
) -> None:
    """Record ``reviewed`` more customers and the walk's new position (the one given)."""
    values: dict[str, object] = {"reviewed": RulesReview.reviewed + reviewed}
    if last_customer_id is not None:
        values["last_customer_id"] = last_customer_id
    if walk_position is not None:
        values["walk_position"] = walk_position
    await session.execute(
        update(RulesReview).where(RulesReview.rules_version == version).values(values)
    )


async def complete(session: AsyncSession, version: int, at: datetime) -> None:
    """Record the review of ``version`` as completed at ``at``."""
    await session.execute(
        update(RulesReview).where(RulesReview.rules_version == version).values(completed_at=at)
    )
