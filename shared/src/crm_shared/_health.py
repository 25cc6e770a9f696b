"""``/healthz`` (the process answers), ``/readyz`` (dependencies reachable, outbox flowing),
``/metrics``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from crm_shared._metrics import metrics_endpoint


@dataclass(frozen=True)
class ReadinessResult:
    """A readiness check's verdict, with details worth showing in ``/readyz``'s body."""

    ready: bool
    details: dict[str, Any] = field(default_factory=dict)


ReadinessCheck = Callable[[], Awaitable[bool | ReadinessResult]]

GaugeRefresh = Callable[[], Awaitable[object]]
"""Sets gauges from their source of truth (e.g. the outbox table) just before a scrape."""

_logger = logging.getLogger("crm.health")


def health_router() -> APIRouter:
    """Routes for probes and scraping; they need no API key."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: database and broker reachable, outbox flowing",
        responses={503: {"description": "A dependency is down or the outbox is stuck"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
        results: dict[str, bool] = {}
        details: dict[str, dict[str, Any]] = {}
        for name, check in checks.items():
            verdict = await check()
            if isinstance(verdict, ReadinessResult):
                results[name] = verdict.ready
                details[name] = verdict.details
            else:
                results[name] = verdict
        ready = all(results.values())
        body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": results}
        if details:
            body["details"] = details
        return JSONResponse(body, status_code=200 if ready else 503)

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        # Gauges read from the database at scrape time tell the truth however busy or idle the
        # loop that otherwise updates them is; a database outage keeps the last values.
        refreshes: Sequence[GaugeRefresh] = getattr(request.app.state, "gauge_refreshes", ())
        for refresh in refreshes:
            try:
                await refresh()
            except Exception:
                _logger.warning("gauges not refreshed before a scrape", exc_info=True)
        return metrics_endpoint(request)

    return router
