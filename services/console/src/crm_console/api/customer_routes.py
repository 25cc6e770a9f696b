"""``/customers``: find a customer by e-mail, phone or external id; the 360 of one customer."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from crm_console.api.deps import ClientsDep, OperatorSession, render
from crm_console.clients import Service, ServiceError

router = APIRouter(prefix="/customers", tags=["pages"])
SearchBy = Literal["email", "phone", "external_id", "customer_id"]
CustomerIdPath = Annotated[str, Path(min_length=1, max_length=200)]
MESSAGES_SHOWN = 50


@router.get("", response_class=HTMLResponse, summary="Find a customer")
async def find_customer(
    request: Request,
    session: OperatorSession,
    clients: ClientsDep,
    q: Annotated[str, Query(max_length=320)] = "",
    by: SearchBy = "email",
) -> Response:
    """Searches profile-service; one match opens that customer's page."""
    query = q.strip()
    matches: list[dict[str, object]] = []
    error = None
    if query and by == "customer_id":
        return RedirectResponse(_customer_url(query[:200]), status_code=303)
    if query:
        try:
            page = await clients.get(Service.PROFILE, "/v1/customers", {by: query, "limit": 20})
            matches = page["items"]
        except ServiceError as refused:
            if refused.status != 422:
                raise
            error = refused.detail  # e.g. an e-mail or phone number that cannot be one
        if len(matches) == 1:
            return RedirectResponse(_customer_url(str(matches[0]["id"])), status_code=303)
    context = {"q": query, "by": by, "matches": matches, "error": error, "searched": bool(query)}
    return render(request, "customer_search.html", session, context)


def _customer_url(customer_id: str) -> str:
    # Quoted whole: an id with "/", "?" or "#" stays one path segment of this console.
    return "/customers/" + quote(customer_id, safe="")


@router.get("/{customer_id}", response_class=HTMLResponse, summary="A customer's 360")
async def customer_360(
    request: Request, session: OperatorSession, clients: ClientsDep, customer_id: CustomerIdPath
) -> HTMLResponse:
    """Profile and consents, scores and their explanation, stage history, warnings and
    messages, each from the service that owns it; a service that does not know the
    customer leaves its part empty."""
    segment = quote(customer_id, safe="")  # one path segment at every service
    view, scores, stage, warnings, messages = await asyncio.gather(
        clients.get_or_none(Service.PROFILE, f"/v1/customers/{segment}/360"),
        clients.get_or_none(Service.SCORING, f"/v1/scores/{segment}"),
        clients.get_or_none(Service.LIFECYCLE, f"/v1/customers/{segment}/stage"),
        clients.get(Service.LIFECYCLE, "/v1/warnings", {"customer_id": customer_id, "limit": 20}),
        clients.get(
            Service.NOTIFICATION,
            "/v1/notifications",
            {"customer_id": customer_id, "limit": MESSAGES_SHOWN},
        ),
    )
    known = any(part is not None for part in (view, scores, stage)) or bool(messages["items"])
    context = {
        "customer_id": customer_id,
        "known": known,
        "view": view,
        "scores": scores,
        "stage": stage,
        "warnings": warnings["items"],
        "messages": messages["items"],
    }
    return render(request, "customer.html", session, context, status_code=200 if known else 404)
