"""Stage rules versions: the highest stored version is in force; none stored means defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared.rule_documents import InvalidRuleDocument
from lifecycle_service.db.models import StageRulesVersion
from lifecycle_service.domain.rules import StageRules, validate_rules

DEFAULT_AUTHOR = "defaults"


@dataclass(frozen=True)
class RulesVersion:
    """One version of the rules and who set it when (version 0: the built-in defaults)."""

    version: int
    rules: StageRules
    created_at: datetime | None
    created_by: str
    comment: str | None


async def current_rules(session: AsyncSession) -> RulesVersion:
    """The rules in force."""
    row = await session.scalar(
        select(StageRulesVersion).order_by(StageRulesVersion.version.desc()).limit(1)
    )
    if row is None:
        return RulesVersion(0, StageRules(), None, DEFAULT_AUTHOR, "built-in defaults")
    return _version_of(row)


async def rules_history(session: AsyncSession) -> list[RulesVersion]:
    """Every stored version, newest first."""
    rows = await session.scalars(
        select(StageRulesVersion).order_by(StageRulesVersion.version.desc())
    )
    return [_version_of(row) for row in rows]


async def replace_rules(
    session: AsyncSession,
    rules: StageRules,
    *,
    author: str,
    comment: str | None,
    now: datetime,
) -> RulesVersion:
    """Store ``rules`` as the next version; the next sweep reviews every buyer under it.

    Invalid rules raise :class:`InvalidRuleDocument`. Review times were computed with the old
    thresholds; nothing is rewritten here (that was an UPDATE of every buyer, and every row
    locked and rewritten again by the sweep): the sweep finds a version newer than its last
    completed review and walks every buyer (``workflows.rules_review``).
    """
    problems = validate_rules(rules)
    if problems:
        raise InvalidRuleDocument(problems)
    latest = await session.scalar(select(func.max(StageRulesVersion.version))) or 0
    row = StageRulesVersion(
        version=latest + 1,
        rules=rules.to_dict(),
        created_at=now,
        created_by=author,
        comment=comment,
    )
    session.add(row)
    await session.flush()
    return _version_of(row)


def _version_of(row: StageRulesVersion) -> RulesVersion:
    return RulesVersion(
        version=row.version,
        rules=StageRules.from_dict(row.rules),
        created_at=row.created_at,
        created_by=row.created_by,
        comment=row.comment,
    )
