"""The parts every service's FastAPI app has: errors, auth, request ids, metrics, probes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI

from crm_shared._auth import ApiKeyAuthenticator
from crm_shared._body_limit import install_body_limit
from crm_shared._docs import install_local_docs
from crm_shared._health import health_router
from crm_shared._logging import configure_logging
from crm_shared._metrics import RequestContextMiddleware, ServiceMetrics
from crm_shared._nul_guard import NulCharacterGuard
from crm_shared._openapi import document_unreadable_bodies, problem_responses
from crm_shared._problems import install_problem_handlers
from crm_shared._settings import ServiceSettings

_ACCESS_AND_ERRORS = """
Every endpoint but `/healthz`, `/readyz`, `/metrics` and the docs needs an API key in the
`X-API-Key` header (scopes: read < write < admin). Errors are RFC 9457 problem+json.
"""

PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = problem_responses(
    {
        401: "No valid API key",
        403: "The key lacks the needed scope",
        413: "The request body is larger than the endpoint accepts",
        422: "A field is invalid",
    }
)


def create_service_app(
    *,
    settings: ServiceSettings,
    metrics: ServiceMetrics,
    title: str,
    description: str,
    version: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]]
    | Callable[[FastAPI], AsyncIterator[None]],
    openapi_tags: list[dict[str, Any]] | None = None,
) -> FastAPI:
    """A FastAPI app with the shared behaviour installed; the service adds its routers."""
    configure_logging(settings.service_name, settings.log_level)
    app = FastAPI(
        title=title,
        description=description.rstrip() + "\n" + _ACCESS_AND_ERRORS,
        version=version,
        lifespan=lifespan,  # type: ignore[arg-type]
        openapi_tags=openapi_tags,
        responses=PROBLEM_RESPONSES,
        docs_url=None,  # served from the package by install_local_docs, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.authenticator = ApiKeyAuthenticator(settings.api_keys)
    app.state.readiness_checks = {}
    install_problem_handlers(app)
    install_body_limit(app, settings.max_request_body_bytes)  # inside: 413s get ids and metrics
    app.add_middleware(NulCharacterGuard)  # inside the request context: its 422s get an id
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    app.include_router(health_router())
    install_local_docs(app)
    _add_problem_schema(app)
    return app


def _add_problem_schema(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = {
            "title": "Problem",
            "description": "RFC 9457 problem details",
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "instance": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
            "required": ["type", "title", "status", "detail"],
        }
        document_unreadable_bodies(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
