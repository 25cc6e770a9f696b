"""``/healthz`` (the process answers), ``/readyz`` (database and broker reachable), ``/metrics``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from crm_shared._metrics import metrics_endpoint

ReadinessCheck = Callable[[], Awaitable[bool]]


def health_router() -> APIRouter:
    """Routes for probes and scraping; they need no API key."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz", summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Readiness: database and broker reachable",
        responses={503: {"description": "A dependency is down"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": results},
            status_code=200 if ready else 503,
        )

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        return metrics_endpoint(request)

    return router
