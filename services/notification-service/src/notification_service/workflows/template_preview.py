"""Previewing a template: a stored or draft text rendered for the sample or a real customer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import NotificationChannel
from crm_shared.errors import NotFound
from notification_service.db.models import Contact
from notification_service.domain.delivery_policy import INTERNAL_CHANNELS
from notification_service.domain.templates import SAMPLE_CONTEXT, RenderedMessage, Template
from notification_service.workflows import playbook_store
from notification_service.workflows.message_context import customer_context
from notification_service.workflows.rendering import TemplateRenderer

DRAFT_ID = "draft"


async def preview(
    session: AsyncSession,
    channel: NotificationChannel,
    *,
    template_id: str | None,
    parts: Mapping[str, str] | None,
    customer_id: str | None,
    public_base_url: str,
    renderer: TemplateRenderer,
) -> RenderedMessage:
    """Render ``parts`` (a draft) or the stored text of ``template_id`` for ``channel``, off
    the event loop within the renderer's limits.

    With ``customer_id`` the context is that customer's as a message sent now, outside any
    trigger, would see it (no warning, no order); without, :data:`SAMPLE_CONTEXT`. Raises
    :class:`InvalidTemplate` with every problem, 404 for an unknown template or customer.
    """
    if parts is not None:
        template = Template(template_id or DRAFT_ID, channel, parts)
    elif template_id is not None:
        found = await playbook_store.template_for(session, template_id, channel)
        if found is None:
            raise NotFound(f"No template {template_id!r} for {channel.value}.")
        template = found
    else:
        raise ValueError("a preview needs a template id or parts")
    context = await _context(session, channel, customer_id, public_base_url)
    return await renderer.render_checked(template, context)


async def _context(
    session: AsyncSession,
    channel: NotificationChannel,
    customer_id: str | None,
    public_base_url: str,
) -> Mapping[str, Any]:
    if customer_id is None:
        return SAMPLE_CONTEXT
    contact = await session.get(Contact, customer_id)
    if contact is None:
        raise NotFound(f"notification-service knows no customer {customer_id}.")
    # A link of the real shape that unsubscribes nobody: a read key must not mint opt-outs.
    link = (
        None
        if channel in INTERNAL_CHANNELS
        else f"{public_base_url.rstrip('/')}/v1/unsubscribe/preview-only"
    )
    return customer_context(contact, link)
