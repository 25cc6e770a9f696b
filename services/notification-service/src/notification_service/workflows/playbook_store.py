"""Playbook rules and templates in the database, seeded with the shipped defaults once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Category, NotificationChannel
from crm_shared import upsert_into
from notification_service.db.models import PlaybookRuleRow, TemplateRow
from notification_service.domain.default_playbook import DEFAULT_RULES
from notification_service.domain.default_templates import DEFAULT_TEMPLATES
from notification_service.domain.playbooks import PlaybookRule
from notification_service.domain.templates import Template


async def seed_defaults(session: AsyncSession, now: datetime) -> None:
    """Store the default rules and templates if none are stored yet (every replica may try)."""
    if await session.scalar(select(PlaybookRuleRow.rule_id).limit(1)) is None:
        statement = upsert_into(session, PlaybookRuleRow).on_conflict_do_nothing()
        await session.execute(
            statement,
            [
                {"rule_id": rule.rule_id, "document": rule.to_dict(), "updated_at": now}
                for rule in DEFAULT_RULES
            ],
        )
    if await session.scalar(select(TemplateRow.template_id).limit(1)) is None:
        statement = upsert_into(session, TemplateRow).on_conflict_do_nothing()
        await session.execute(statement, [_template_values(t, now) for t in DEFAULT_TEMPLATES])


async def all_rules(session: AsyncSession) -> list[PlaybookRule]:
    """Every stored rule, by id."""
    rows = await session.scalars(select(PlaybookRuleRow).order_by(PlaybookRuleRow.rule_id))
    return [PlaybookRule.from_dict(row.document) for row in rows]


_RULES_OF_TRANSACTION = "notification.rules"


async def rules_for_transaction(session: AsyncSession) -> list[PlaybookRule]:
    """The rules, read once per transaction: a consumed batch matches hundreds of events, and
    an edit made meanwhile applies from the next batch."""
    cached: list[PlaybookRule] | None = session.info.get(_RULES_OF_TRANSACTION)
    if cached is None:
        cached = await all_rules(session)
        session.info[_RULES_OF_TRANSACTION] = cached
    return cached


async def rule_by_id(session: AsyncSession, rule_id: str) -> PlaybookRule | None:
    """One rule, or None."""
    row = await session.get(PlaybookRuleRow, rule_id)
    return PlaybookRule.from_dict(row.document) if row is not None else None


async def save_rule(session: AsyncSession, rule: PlaybookRule, now: datetime) -> None:
    """Create or replace a rule (validated by the caller)."""
    statement = upsert_into(session, PlaybookRuleRow).values(
        rule_id=rule.rule_id, document=rule.to_dict(), updated_at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[PlaybookRuleRow.rule_id],
            set_={"document": statement.excluded.document, "updated_at": now},
        )
    )


async def create_rule(session: AsyncSession, rule: PlaybookRule, now: datetime) -> bool:
    """Store a new rule (validated by the caller); False when its id is taken."""
    statement = upsert_into(session, PlaybookRuleRow).values(
        rule_id=rule.rule_id, document=rule.to_dict(), updated_at=now
    )
    result = await session.execute(
        statement.on_conflict_do_nothing(index_elements=[PlaybookRuleRow.rule_id])
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def rules_using_template(
    session: AsyncSession, template_id: str, channel: NotificationChannel | None = None
) -> list[str]:
    """The ids of the rules that send ``template_id`` (on ``channel``, when given)."""
    return [
        rule.rule_id
        for rule in await all_rules(session)
        if rule.template_id == template_id and (channel is None or channel in rule.channels)
    ]


async def delete_rule(session: AsyncSession, rule_id: str) -> bool:
    """Delete a rule; False when there was none."""
    result = await session.execute(
        delete(PlaybookRuleRow).where(PlaybookRuleRow.rule_id == rule_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def all_templates(session: AsyncSession) -> list[Template]:
    """Every stored template, by id then channel."""
    rows = await session.scalars(
        select(TemplateRow).order_by(TemplateRow.template_id, TemplateRow.channel)
    )
    return [_template_of(row) for row in rows]


async def templates_by_id(session: AsyncSession, template_id: str) -> list[Template]:
    """The template's text for each channel it has."""
    rows = await session.scalars(
        select(TemplateRow)
        .where(TemplateRow.template_id == template_id)
        .order_by(TemplateRow.channel)
    )
    return [_template_of(row) for row in rows]


async def template_for(
    session: AsyncSession, template_id: str, channel: NotificationChannel
) -> Template | None:
    """The template's text for ``channel``, or None."""
    row = await session.get(TemplateRow, (template_id, channel.value))
    return _template_of(row) if row is not None else None


async def template_ids(session: AsyncSession) -> set[str]:
    """Every template id stored."""
    return set(await session.scalars(select(TemplateRow.template_id).distinct()))


async def save_template(session: AsyncSession, template: Template, now: datetime) -> None:
    """Create or replace one channel's text of a template (validated by the caller)."""
    statement = upsert_into(session, TemplateRow).values(**_template_values(template, now))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[TemplateRow.template_id, TemplateRow.channel],
            set_={
                "parts": statement.excluded.parts,
                "category": statement.excluded.category,
                "updated_at": now,
            },
        )
    )


async def set_template_category(
    session: AsyncSession, template_id: str, category: Category, now: datetime
) -> None:
    """Make every channel's text of ``template_id`` of ``category``."""
    await session.execute(
        update(TemplateRow)
        .where(TemplateRow.template_id == template_id)
        .values(category=category.value, updated_at=now)
    )


async def delete_template(
    session: AsyncSession, template_id: str, channels: Sequence[NotificationChannel] | None
) -> int:
    """Delete a template (all channels, or those given); how many channel texts went."""
    statement = delete(TemplateRow).where(TemplateRow.template_id == template_id)
    if channels is not None:
        statement = statement.where(TemplateRow.channel.in_([c.value for c in channels]))
    result = await session.execute(statement)
    return int(result.rowcount)  # type: ignore[attr-defined]


def _template_of(row: TemplateRow) -> Template:
    return Template(
        row.template_id, NotificationChannel(row.channel), row.parts, Category(row.category)
    )


def _template_values(template: Template, now: datetime) -> dict[str, object]:
    return {
        "template_id": template.template_id,
        "channel": template.channel.value,
        "parts": dict(template.parts),
        "category": template.category.value,
        "updated_at": now,
    }
