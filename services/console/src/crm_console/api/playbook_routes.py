"""``/playbooks``: rules and templates with their outcomes; edit, preview, dry-run."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from crm_console.api.deps import ClientsDep, OperatorSession, read_form, render
from crm_console.clients import Service, ServiceError
from crm_console.domain.playbook_forms import (
    CATEGORIES,
    EVENT_TYPES,
    RULE_FIELDS,
    RuleForm,
    form_of_rule,
    outcomes_by_rule,
    rule_body,
)

router = APIRouter(prefix="/playbooks", tags=["playbooks"])
Slug = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._-]+$")]
CHANNELS = ("email", "sms", "webhook", "in_app")


@router.get("", response_class=HTMLResponse, summary="Rules and templates")
async def playbooks(
    request: Request, session: OperatorSession, clients: ClientsDep, saved: str | None = None
) -> HTMLResponse:
    """Every rule with what its messages became, and every template text."""
    rules, templates, counts = await asyncio.gather(
        clients.get(Service.NOTIFICATION, "/v1/rules"),
        clients.get(Service.NOTIFICATION, "/v1/templates"),
        clients.get(Service.NOTIFICATION, "/v1/notifications/outcomes"),
    )
    outcomes = outcomes_by_rule(counts)
    context = {
        "rules": rules,
        "templates": templates,
        "outcomes": outcomes,
        "reasons": sorted({r for o in outcomes.values() for r in o.suppressed}),
        "saved": saved if saved and len(saved) <= 80 else None,
    }
    return render(request, "playbooks.html", session, context)


@router.get("/rules/{rule_id}", response_class=HTMLResponse, summary="Edit a rule")
async def edit_rule(
    request: Request, session: OperatorSession, clients: ClientsDep, rule_id: Slug
) -> HTMLResponse:
    """The rule's form, filled from notification-service."""
    rule = await clients.get(Service.NOTIFICATION, f"/v1/rules/{rule_id}")
    return _rule_page(request, session, rule_id, form_of_rule(rule))


@router.post("/rules/{rule_id}", summary="Save a rule")
async def save_rule(
    request: Request, session: OperatorSession, clients: ClientsDep, rule_id: Slug
) -> Response:
    """Replaces the rule at notification-service (an admin key); its refusal is shown at
    the fields it names."""
    form = await read_form(request, session)
    body, errors = rule_body(form)
    values = {name: form.get(name, "") for name in RULE_FIELDS}
    if errors:
        return _rule_page(request, session, rule_id, RuleForm(values, errors), status_code=422)
    try:
        await clients.send("PUT", Service.NOTIFICATION, f"/v1/rules/{rule_id}", body)
    except ServiceError as refused:
        if refused.status not in (403, 404, 409, 422):
            raise
        field_errors = {
            name: message
            for name in RULE_FIELDS
            if (message := refused.message_for(name)) is not None
        }
        page = RuleForm(values, field_errors)
        return _rule_page(
            request, session, rule_id, page, problem=refused.detail, status_code=refused.status
        )
    return RedirectResponse(f"/playbooks?saved={rule_id}", status_code=303)


def _rule_page(
    request: Request,
    session: Any,
    rule_id: str,
    form: RuleForm,
    *,
    problem: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "rule_id": rule_id,
        "form": form,
        "problem": problem,
        "event_types": EVENT_TYPES,
        "categories": CATEGORIES,
    }
    return render(request, "rule_edit.html", session, context, status_code=status_code)


@router.get("/templates/{template_id}", response_class=HTMLResponse, summary="A template")
async def edit_template(
    request: Request, session: OperatorSession, clients: ClientsDep, template_id: Slug
) -> HTMLResponse:
    """Each channel's text in its own form, and a preview for a real customer."""
    template = await clients.get(Service.NOTIFICATION, f"/v1/templates/{template_id}")
    return _template_page(request, session, template)


@router.post("/templates/{template_id}/{channel}", summary="Save a channel's text")
async def save_template(
    request: Request,
    session: OperatorSession,
    clients: ClientsDep,
    template_id: Slug,
    channel: Slug,
) -> Response:
    """Replaces one channel's text at notification-service; refusals shown per part."""
    form = await read_form(request, session)
    parts = {name[len("part.") :]: text for name, text in form.items() if name.startswith("part.")}
    try:
        await clients.send(
            "PUT",
            Service.NOTIFICATION,
            f"/v1/templates/{template_id}/{channel}",
            {"parts": parts},
        )
    except ServiceError as refused:
        if refused.status not in (403, 404, 409, 422):
            raise
        template = await clients.get(Service.NOTIFICATION, f"/v1/templates/{template_id}")
        template["texts"][channel] = parts
        errors = {part: refused.message_for(part) for part in parts}
        return _template_page(
            request,
            session,
            template,
            channel_errors={channel: {k: v for k, v in errors.items() if v}},
            problem=(channel, refused.detail),
            status_code=refused.status,
        )
    return RedirectResponse(f"/playbooks?saved={template_id}", status_code=303)


@router.post("/templates/{template_id}/{channel}/preview", summary="Preview for a customer")
async def preview_template(
    request: Request,
    session: OperatorSession,
    clients: ClientsDep,
    template_id: Slug,
    channel: Slug,
) -> HTMLResponse:
    """The stored text rendered for a customer (an htmx fragment); nothing is sent."""
    form = await read_form(request, session)
    customer_id = form.get("customer_id", "").strip()[:200] or None
    body = {"template_id": template_id, "channel": channel, "customer_id": customer_id}
    try:
        rendered = await clients.send("POST", Service.NOTIFICATION, "/v1/templates/preview", body)
        context: dict[str, Any] = {"rendered": rendered, "error": None}
    except ServiceError as refused:
        if refused.status not in (403, 404, 422):
            raise
        context = {"rendered": None, "error": refused.detail}
    return render(request, "_preview.html", session, context)


def _template_page(
    request: Request,
    session: Any,
    template: dict[str, Any],
    *,
    channel_errors: dict[str, dict[str, str]] | None = None,
    problem: tuple[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "template": template,
        "channel_errors": channel_errors or {},
        "problem": problem,
    }
    return render(request, "template_edit.html", session, context, status_code=status_code)


@router.get("/lifecycle-rules", response_class=HTMLResponse, summary="Lifecycle rules")
async def lifecycle_rules(
    request: Request, session: OperatorSession, clients: ClientsDep
) -> HTMLResponse:
    """The stage rules in force, editable as JSON for a dry run over the whole base."""
    rules = await clients.get(Service.LIFECYCLE, "/v1/rules")
    context = {"rules": rules, "document": json.dumps(rules["rules"], indent=2, sort_keys=True)}
    return render(request, "lifecycle_rules.html", session, context)


@router.post("/lifecycle-rules/dry-run", summary="Dry-run lifecycle rules")
async def dry_run(request: Request, session: OperatorSession, clients: ClientsDep) -> HTMLResponse:
    """How many customers the rules in the form would move and warn (an htmx fragment)."""
    form = await read_form(request, session)
    context: dict[str, Any] = {"report": None, "error": None, "errors": []}
    try:
        document = json.loads(form.get("rules") or "{}")
        body: dict[str, Any] = {"rules": document}
        if form.get("as_of"):
            body["as_of"] = form["as_of"] + "T23:59:59Z"
        context["report"] = await clients.send("POST", Service.LIFECYCLE, "/v1/rules/dry-run", body)
    except json.JSONDecodeError as error:
        context["error"] = f"The rules are not valid JSON: {error.msg} (line {error.lineno})"
    except ServiceError as refused:
        if refused.status not in (403, 422):
            raise
        context["error"] = refused.detail
        context["errors"] = refused.errors
    return render(request, "_dry_run.html", session, context)
