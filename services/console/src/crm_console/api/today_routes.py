"""``/``: Today. Open churn warnings by value at risk, this week's outcomes, a health strip."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from crm_console.api.deps import ClientsDep, OperatorSession, render
from crm_console.clients import Service, ServiceClients
from crm_console.domain.health import ServiceHealth, service_health

router = APIRouter(tags=["pages"])
WARNINGS_SHOWN = 50


@router.get("/", response_class=HTMLResponse, summary="Today")
async def today(
    request: Request,
    session: OperatorSession,
    clients: ClientsDep,
    as_of: Annotated[date | None, Query(description="The day whose week is shown.")] = None,
) -> HTMLResponse:
    """The work list: open warnings, the week's outcomes, and what needs an operator."""
    day = as_of or date.today()
    week_start = day - timedelta(days=day.weekday())
    warnings, week = await asyncio.gather(
        clients.get(Service.LIFECYCLE, "/v1/warnings/at-risk", {"limit": WARNINGS_SHOWN}),
        clients.get(
            Service.LIFECYCLE,
            "/v1/analytics/warnings",
            {
                "raised_from": week_start.isoformat(),
                "raised_to": (day + timedelta(days=1)).isoformat(),
            },
        ),
    )
    return render(
        request,
        "today.html",
        session,
        {
            "warnings": warnings,
            "week": week["total"],
            "week_start": week_start,
            "day": day,
        },
    )


@router.get("/health-strip", response_class=HTMLResponse, summary="The health strip")
async def health_strip(
    request: Request, session: OperatorSession, clients: ClientsDep
) -> HTMLResponse:
    """Each service's readiness, dead letters and outbox (an htmx fragment of Today): eight
    probes, loaded after the work list so that the list never waits for them."""
    return render(request, "_health.html", session, {"health": await _health(clients)})


async def _health(clients: ServiceClients) -> list[ServiceHealth]:
    async def one(service: Service) -> ServiceHealth:
        ready, metrics = await asyncio.gather(
            clients.probe(service, "/readyz"), clients.probe(service, "/metrics")
        )
        readiness = None if ready is None else ready.status_code == 200
        text = metrics.text if metrics is not None and metrics.status_code == 200 else None
        return service_health(service.value, readiness, text)

    found: list[Any] = await asyncio.gather(*(one(service) for service in Service))
    return found
