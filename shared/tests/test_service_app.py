"""create_service_app runs a service: runtime, scheduled jobs, hooks in order, routers; its
settings reach routes through settings_dependency; and must_exist, the 404 of a lookup that
finds nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from crm_shared import (
    NotFound,
    ProcessSettings,
    ScheduledJob,
    ServiceRuntime,
    ServiceSettings,
    create_service_app,
    new_metadata,
    plumbing_tables,
    settings_dependency,
)
from crm_shared.errors import must_exist

TABLES = plumbing_tables(new_metadata())


def _settings(tmp_path: Path) -> ServiceSettings:
    return ServiceSettings(
        service_name="app-test",
        environment="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
        kafka_enabled=False,
    )


async def test_the_lifespan_starts_jobs_and_hooks_inside_resources(tmp_path: Path) -> None:
    events: list[str] = []
    ran = asyncio.Event()
    wake = asyncio.Event()

    async def job(runtime: ServiceRuntime) -> None:
        assert runtime.settings.service_name == "app-test"
        ran.set()

    async def never(_runtime: ServiceRuntime) -> None:
        events.append("switched-off job ran")

    @asynccontextmanager
    async def resources(_app: FastAPI) -> AsyncIterator[None]:
        events.append("resources in")
        yield
        events.append("resources out")

    @asynccontextmanager
    async def on_start(app: FastAPI, runtime: ServiceRuntime) -> AsyncIterator[None]:
        assert app.state.runtime is runtime  # attached before the hook runs
        events.append("started")
        yield
        assert not runtime.stopping.is_set()  # left before the runtime stops
        events.append("stopping")

    app = create_service_app(
        settings=_settings(tmp_path),
        title="app-test",
        description="A test service.",
        version="0.1.0",
        plumbing=TABLES,
        jobs=[ScheduledJob("job", 3600, job, wake=wake), ScheduledJob("off", 0, never)],
        resources=resources,
        on_start=on_start,
    )
    async with app.router.lifespan_context(app):
        wake.set()  # the hour-long interval never passes here: only the wake runs the job
        await asyncio.wait_for(ran.wait(), timeout=30)
    assert events == ["resources in", "started", "stopping", "resources out"]


def test_the_routers_given_are_included(tmp_path: Path) -> None:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        known = {"t-1": "one"}
        return {"name": must_exist(known.get(thing_id), f"No thing {thing_id}.")}

    app = create_service_app(
        settings=_settings(tmp_path),
        title="app-test",
        description="A test service.",
        version="0.1.0",
        routers=[router],
    )
    assert "/things/{thing_id}" in app.openapi()["paths"]


def test_the_title_is_the_service_name_unless_given(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    named = create_service_app(settings=settings, description="A test service.")
    titled = create_service_app(settings=settings, description="A test.", title="Things API")
    assert (named.title, named.version) == (settings.service_name, "0.1.0")
    assert titled.title == "Things API"


class _OtherSettings(ProcessSettings):
    pass


async def test_a_route_gets_the_apps_settings_as_its_own_class(tmp_path: Path) -> None:
    router = APIRouter()
    seen: list[ServiceSettings] = []

    @router.get("/name")
    async def name(
        settings: Annotated[ServiceSettings, Depends(settings_dependency(ServiceSettings))],
    ) -> dict[str, str]:
        seen.append(settings)
        return {"name": settings.service_name}

    @router.get("/other")
    async def other(
        settings: Annotated[_OtherSettings, Depends(settings_dependency(_OtherSettings))],
    ) -> dict[str, str]:
        return {"name": settings.service_name}

    settings = _settings(tmp_path)
    app = create_service_app(settings=settings, description="A test.", routers=[router])
    assert "parameters" not in app.openapi()["paths"]["/name"]["get"]  # no query, no header
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/name")).json() == {"name": "app-test"}
        assert seen == [settings]
        with pytest.raises(TypeError, match="holds ServiceSettings, not _OtherSettings"):
            await client.get("/other")


def test_must_exist_returns_the_value_or_raises_not_found() -> None:
    assert must_exist(0, "zero is a value") == 0
    with pytest.raises(NotFound, match="No thing t-2"):
        must_exist(None, "No thing t-2.")
