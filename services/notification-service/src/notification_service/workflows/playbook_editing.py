"""Editing the playbook through the API: rules and templates checked against each other.

A rule is only stored when it can go live: valid on its own (``validate_rule``) and with a
text of its template for every channel it may fall back to, since delivery fails a message
whose chosen channel has no text. For the same reason a template text that a rule still sends
cannot be deleted; a template text is only stored when it renders the sample context.

A template's category (marketing or service) is what its text is, so a rule sends it with
that category or not at all, and a template's category cannot change while a rule sends it
with the other one: consent for marketing is never skipped by calling an offer a service.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Category, NotificationChannel
from crm_shared.errors import Conflict, NotFound
from crm_shared.rule_documents import InvalidRuleDocument, RuleProblem
from notification_service.domain.playbooks import PlaybookRule
from notification_service.domain.rule_validation import validate_rule
from notification_service.domain.templates import InvalidTemplate, Template
from notification_service.workflows import playbook_store
from notification_service.workflows.rendering import TemplateRenderer


async def rule_problems(session: AsyncSession, rule: PlaybookRule) -> list[RuleProblem]:
    """Every problem of ``rule`` against the stored templates; empty when it can go live."""
    problems = validate_rule(rule, known_template_ids=await playbook_store.template_ids(session))
    if any(problem.field == "template_id" for problem in problems):
        return problems
    stored = await playbook_store.templates_by_id(session, rule.template_id)
    texts = {t.channel for t in stored}
    category = stored[0].category if stored else rule.category
    if rule.category is not category:
        problems.append(
            RuleProblem(
                "category",
                f"template {rule.template_id!r} is {category.value}: its rules are too",
            )
        )
    problems.extend(
        RuleProblem(
            f"channels.{index}", f"template {rule.template_id!r} has no {channel.value} text"
        )
        for index, channel in enumerate(rule.channels)
        if channel not in texts
    )
    return problems


async def create_rule(session: AsyncSession, rule: PlaybookRule, now: datetime) -> None:
    """Store a new rule; :class:`InvalidRuleDocument` or 409 when its id is taken."""
    await _check(session, rule)
    if not await playbook_store.create_rule(session, rule, now):
        raise Conflict(
            f"A rule {rule.rule_id!r} exists already; PUT /v1/rules/{rule.rule_id} replaces it."
        )


async def replace_rule(session: AsyncSession, rule: PlaybookRule, now: datetime) -> None:
    """Replace a stored rule; :class:`InvalidRuleDocument`, or 404 when there is none."""
    if await playbook_store.rule_by_id(session, rule.rule_id) is None:
        raise NotFound(f"No rule {rule.rule_id!r}; POST /v1/rules creates one.")
    await _check(session, rule)
    await playbook_store.save_rule(session, rule, now)


async def remove_rule(session: AsyncSession, rule_id: str) -> None:
    """Delete a rule; its messages still queued are suppressed when due. 404 when unknown."""
    if not await playbook_store.delete_rule(session, rule_id):
        raise NotFound(f"No rule {rule_id!r}.")


async def save_template_text(
    session: AsyncSession,
    template: Template,
    now: datetime,
    renderer: TemplateRenderer,
    category: Category | None = None,
) -> tuple[Template, bool]:
    """Store one channel's text of a template; the text as stored, and True when it is new.

    ``category`` applies to every channel's text of the template; None keeps the template's
    (marketing for a new one). Raises :class:`InvalidTemplate` naming every part that does
    not render the sample, 409 when rules send the template with another category.
    """
    problems = await renderer.problems(template)
    if problems:
        raise InvalidTemplate(problems)
    stored = await playbook_store.templates_by_id(session, template.template_id)
    current = stored[0].category if stored else None
    chosen = category or current or Category.MARKETING
    if current is not None and chosen is not current:
        others = [
            rule.rule_id
            for rule in await playbook_store.all_rules(session)
            if rule.template_id == template.template_id and rule.category is not chosen
        ]
        if others:
            raise Conflict(
                f"Rules {', '.join(others)} send this template as {current.value}; change"
                " their category or delete them first.",
                rules=others,
            )
        await playbook_store.set_template_category(session, template.template_id, chosen, now)
    saved = dataclasses.replace(template, category=chosen)
    await playbook_store.save_template(session, saved, now)
    return saved, all(text.channel is not template.channel for text in stored)


async def remove_template(
    session: AsyncSession, template_id: str, channel: NotificationChannel | None
) -> None:
    """Delete a template's texts (every channel, or one); 409 while a rule sends them."""
    users = await playbook_store.rules_using_template(session, template_id, channel)
    if users:
        what = f"{channel.value} text" if channel is not None else "template"
        raise Conflict(
            f"Rules {', '.join(users)} still send this {what}; change or delete them first.",
            rules=users,
        )
    channels = [channel] if channel is not None else None
    if not await playbook_store.delete_template(session, template_id, channels):
        suffix = f" for {channel.value}" if channel is not None else ""
        raise NotFound(f"No template {template_id!r}{suffix}.")


async def _check(session: AsyncSession, rule: PlaybookRule) -> None:
    problems = await rule_problems(session, rule)
    if problems:
        raise InvalidRuleDocument(problems)
