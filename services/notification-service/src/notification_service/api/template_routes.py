"""``/v1/templates``: message texts per template and channel, checked on save, and previews.

A text is stored only when it renders the sample data in the sandbox: syntax errors,
misspelt names and reaching for Python internals are refused with the part and line at fault.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from crm_contracts import NotificationChannel
from crm_shared import AdminAccess, ReadAccess, SessionDep, WriteAccess, problem_responses, utc_now
from crm_shared.errors import NotFound, UnprocessableContent
from notification_service.api import SettingsDep
from notification_service.api.schemas import (
    PreviewRequest,
    PreviewView,
    TemplateDetail,
    TemplateText,
    TemplateView,
)
from notification_service.domain.templates import InvalidTemplate, Template
from notification_service.workflows import playbook_editing, playbook_store, template_preview

router = APIRouter(prefix="/v1/templates", tags=["templates"])

# Template ids appear in URLs and in rules: lower-case slugs, as rule ids.
TemplateId = Annotated[
    str, Path(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=80, description="A lower-case slug.")
]


@router.get("", response_model=list[TemplateView], summary="Every template text")
async def list_templates(session: SessionDep, _: ReadAccess) -> list[TemplateView]:
    """Each template's text for each channel it has, by template id then channel."""
    return [_view(template) for template in await playbook_store.all_templates(session)]


@router.post(
    "/preview",
    response_model=PreviewView,
    summary="Render a template as it would be sent",
    responses=problem_responses(
        {404: "No stored text of the template for the channel, or no such customer here"}
    ),
)
async def preview_template(
    body: PreviewRequest,
    request: Request,
    settings: SettingsDep,
    session: SessionDep,
    _: WriteAccess,
) -> PreviewView:
    """Renders the stored text of ``template_id`` for ``channel``, or draft ``parts``, with the
    sample data or with a customer's (as a message sent now, outside any trigger, sees them).
    Nothing is stored or sent; a template that does not render is a 422 naming each part,
    one past its render limits too (kind ``limit``: steps, time or size). Needs the write
    scope: a render spends the service's CPU."""
    try:
        rendered = await template_preview.preview(
            session,
            body.channel,
            template_id=body.template_id,
            parts=body.parts,
            customer_id=body.customer_id,
            public_base_url=settings.public_base_url,
            renderer=request.app.state.renderer,
        )
    except InvalidTemplate as invalid:
        raise _template_problem(invalid) from invalid
    return PreviewView(
        template_id=body.template_id,
        channel=body.channel,
        customer_id=body.customer_id,
        parts=rendered.parts,
    )


@router.get(
    "/{template_id}",
    response_model=TemplateDetail,
    summary="A template",
    responses=problem_responses({404: "No such template"}),
)
async def read_template(template_id: str, session: SessionDep, _: ReadAccess) -> TemplateDetail:
    """The template's text for every channel it has, and the rules that send it."""
    texts = await playbook_store.templates_by_id(session, template_id)
    if not texts:
        raise NotFound(f"No template {template_id!r}.")
    return TemplateDetail(
        template_id=template_id,
        category=texts[0].category,
        texts={text.channel: dict(text.parts) for text in texts},
        used_by=await playbook_store.rules_using_template(session, template_id),
    )


@router.put(
    "/{template_id}/{channel}",
    response_model=TemplateView,
    summary="Create or replace a channel's text",
    responses={
        201: {"description": "The template had no text for this channel."},
        **problem_responses(
            {409: "A rule sends this template with the other category: change or delete it first"}
        ),
    },
)
async def save_template(
    template_id: TemplateId,
    channel: NotificationChannel,
    body: TemplateText,
    request: Request,
    response: Response,
    session: SessionDep,
    _: AdminAccess,
) -> TemplateView:
    """Refused (422) unless every part renders the sample data: each problem names its part
    (``parts.<part>``), kind (syntax, undefined, security, invalid_json, missing_part...) and
    line. Messages queued before are rendered with the new text when they are sent.
    ``category`` applies to every channel of the template (409 while a rule sends it with
    the other category)."""
    template = Template(template_id, channel, body.parts)
    try:
        saved, created = await playbook_editing.save_template_text(
            session, template, utc_now(), request.app.state.renderer, body.category
        )
    except InvalidTemplate as invalid:
        raise _template_problem(invalid) from invalid
    if created:
        response.status_code = status.HTTP_201_CREATED
    return _view(saved)


@router.delete(
    "/{template_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a template",
    responses=problem_responses(
        {404: "No such template", 409: "Rules still send it; `rules` names them."}
    ),
)
async def delete_template(template_id: str, session: SessionDep, _: AdminAccess) -> Response:
    """Every channel's text; refused while a rule sends the template."""
    await playbook_editing.remove_template(session, template_id, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete(
    "/{template_id}/{channel}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a channel's text",
    responses=problem_responses(
        {
            404: "The template has no text for this channel",
            409: "Rules still send it on this channel; `rules` names them.",
        }
    ),
)
async def delete_template_text(
    template_id: str, channel: NotificationChannel, session: SessionDep, _: AdminAccess
) -> Response:
    """One channel's text; refused while a rule lists that channel for the template."""
    await playbook_editing.remove_template(session, template_id, channel)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _template_problem(invalid: InvalidTemplate) -> UnprocessableContent:
    return UnprocessableContent(
        "The template does not render: " + str(invalid),
        errors=[
            {"field": f"parts.{p.part}", "message": p.message, "kind": p.kind, "line": p.line}
            for p in invalid.problems
        ],
    )


def _view(template: Template) -> TemplateView:
    return TemplateView(
        template_id=template.template_id,
        channel=template.channel,
        category=template.category,
        parts=dict(template.parts),
    )
