"""The console's factory: settings in, FastAPI app out (pages, static files, one HTTP client)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from crm_console.api import (
    auth_routes,
    customer_routes,
    export_routes,
    insight_routes,
    playbook_routes,
    today_routes,
)
from crm_console.api.deps import FormRefused, LoginRequired
from crm_console.clients import ServiceError, base_urls
from crm_console.session import SessionCodec
from crm_console.settings import ConsoleSettings
from crm_shared import configure_logging

PACKAGE = Path(__file__).parent
# No script or style from anywhere but the console itself; no framing (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    """Build the console; its HTTP client to the services opens with the lifespan."""
    settings = settings or ConsoleSettings()
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # trust_env=False: the services are reached directly, never through a proxy.
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=40)
        async with httpx.AsyncClient(
            timeout=settings.service_timeout_seconds, limits=limits, trust_env=False
        ) as http:
            app.state.http = http
            yield

    app = FastAPI(
        title="CRM console",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.service_urls = base_urls(settings)
    app.state.session_codec = SessionCodec(
        settings.effective_session_secret(), settings.session_max_age_seconds
    )
    app.state.templates = Jinja2Templates(directory=PACKAGE / "templates")
    app.mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static")
    for module in (
        auth_routes,
        today_routes,
        customer_routes,
        insight_routes,
        playbook_routes,
        export_routes,
    ):
        app.include_router(module.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.middleware("http")
    async def security_headers(request: Request, call_next):  # type: ignore[no-untyped-def]
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, _: LoginRequired) -> Response:
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(FormRefused)
    async def form_refused(request: Request, refused: FormRefused) -> Response:
        return _error_page(request, refused.status, refused.message)

    @app.exception_handler(ServiceError)
    async def service_failed(request: Request, error: ServiceError) -> Response:
        if error.status == 401:  # the key was revoked since the login
            return RedirectResponse("/login", status_code=303)
        return _error_page(request, 502 if error.status >= 500 else error.status, str(error))

    return app


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, "error.html", {"message": message, "session": None}, status_code=status
    )
