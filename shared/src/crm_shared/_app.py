"""The parts every service's FastAPI app has: errors, auth, request ids, metrics, probes, and
the lifespan that starts its runtime, consumers and scheduled jobs."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request

from crm_shared._auth import ApiKeyAuthenticator
from crm_shared._body_limit import install_body_limit
from crm_shared._db import PlumbingTables
from crm_shared._docs import install_local_docs
from crm_shared._health import health_router
from crm_shared._logging import configure_logging
from crm_shared._metrics import RequestContextMiddleware, ServiceMetrics
from crm_shared._nul_guard import NulCharacterGuard
from crm_shared._openapi import document_unreadable_bodies, problem_responses
from crm_shared._problems import install_problem_handlers
from crm_shared._runtime import ServiceRuntime, Subscription, attach_runtime, run_service
from crm_shared._settings import ProcessSettings, ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ProcessSettings)

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


@dataclass(frozen=True)
class ScheduledJob:
    """A loop a service runs while it is up: every `interval_seconds` (never when that is 0 or
    less, which is how a deployment switches it off), and soon after `wake` is set."""

    name: str
    interval_seconds: float
    run: Callable[[ServiceRuntime], Awaitable[object]]
    wake: asyncio.Event | None = None


AppHook = Callable[[FastAPI], AbstractAsyncContextManager[None]]
"""Resources held around the runtime: entered before it starts, left after it has stopped."""

StartHook = Callable[[FastAPI, ServiceRuntime], AbstractAsyncContextManager[None]]
"""Work done once the runtime runs (seeding, background tasks); left before it stops."""

Lifespan = (
    Callable[[FastAPI], AbstractAsyncContextManager[None]]
    | Callable[[FastAPI], AsyncIterator[None]]
)


def create_service_app(
    *,
    settings: ServiceSettings,
    description: str,
    title: str | None = None,
    version: str = "0.1.0",
    metrics: ServiceMetrics | None = None,
    lifespan: Lifespan | None = None,
    openapi_tags: list[dict[str, Any]] | None = None,
    plumbing: PlumbingTables | None = None,
    produces: Sequence[str] = (),
    subscriptions: Sequence[Subscription[Any]] = (),
    jobs: Sequence[ScheduledJob] = (),
    routers: Sequence[APIRouter] = (),
    resources: AppHook | None = None,
    on_start: StartHook | None = None,
) -> FastAPI:
    """A FastAPI app with the shared behaviour installed and `routers` included.

    The API's title is the service's name unless `title` is given; `version` defaults to
    FastAPI's own default.

    Given `plumbing` (and no `lifespan`), its lifespan runs the service: `run_service` with
    the topics it produces and its subscriptions, the runtime attached to the app, then the
    scheduled `jobs` and `on_start`; `resources` wrap all of it. Without `metrics`, the app
    gets its own.
    """
    metrics = metrics or ServiceMetrics()
    if lifespan is None and plumbing is not None:
        lifespan = functools.partial(
            _run_service_app,
            settings=settings,
            metrics=metrics,
            plumbing=plumbing,
            produces=produces,
            subscriptions=subscriptions,
            jobs=jobs,
            resources=resources,
            on_start=on_start,
        )
    configure_logging(settings.service_name, settings.log_level)
    app = FastAPI(
        title=title or settings.service_name,
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
    for router in routers:
        app.include_router(router)
    return app


@asynccontextmanager
async def _run_service_app(
    app: FastAPI,
    *,
    settings: ServiceSettings,
    metrics: ServiceMetrics,
    plumbing: PlumbingTables,
    produces: Sequence[str],
    subscriptions: Sequence[Subscription[Any]],
    jobs: Sequence[ScheduledJob],
    resources: AppHook | None,
    on_start: StartHook | None,
) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        if resources is not None:
            await stack.enter_async_context(resources(app))
        runtime = await stack.enter_async_context(
            run_service(settings, plumbing, metrics, produces=produces, subscriptions=subscriptions)
        )
        attach_runtime(app, runtime)
        for job in jobs:
            if job.interval_seconds > 0:
                run = functools.partial(job.run, runtime)
                runtime.every(job.name, job.interval_seconds, run, wake=job.wake)
        if on_start is not None:
            await stack.enter_async_context(on_start(app, runtime))
        stack.callback(gc.unfreeze)  # at shutdown: collectable again (matters in tests)
        # The start-up heap (modules, models, schemas, the app: ~120,000 objects in
        # profile-service) lives as long as the process. Frozen out of the cycle collector,
        # a full collection no longer walks it: that walk was ~70 ms of CPU, a stall of every
        # request in flight, the p99 of a cached 360 read under load (bench/RESULTS.md).
        gc.freeze()
        yield


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


def settings_dependency(kind: type[SettingsT]) -> Callable[[Request], Awaitable[SettingsT]]:
    """A route dependency: the settings the app was built with (``app.state.settings``) as the
    service's own class, for ``Annotated[kind, Depends(settings_dependency(kind))]``."""

    # async although it awaits nothing: FastAPI runs a plain function in a worker thread.
    async def app_settings(request: Request) -> SettingsT:
        settings = request.app.state.settings
        if not isinstance(settings, kind):
            raise TypeError(f"the app holds {type(settings).__name__}, not {kind.__name__}")
        return settings

    return app_settings
