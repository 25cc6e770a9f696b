"""Every service refuses a request body over its limit with 413 before reading past the limit.

Issue 11, item 10: a 17 MB request on SQLite held the write lock for 40 s and made a
concurrent order time out. The limit is checked on the declared ``Content-Length`` before the
body is read, and counted chunk by chunk for a chunked body, so an oversized request never
reaches a route, let alone the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import lifecycle_testing
import notification_testing
import profile_testing
import scoring_testing
from crm_shared import Scope
from crm_shared.testing import ApiClient

CHUNK = 64 * 1024
RunningApi = Callable[[str], AbstractAsyncContextManager[ApiClient]]


def _profile(url: str) -> AbstractAsyncContextManager[ApiClient]:
    return profile_testing.running_api(profile_testing.app_settings(url))


def _scoring(url: str) -> AbstractAsyncContextManager[ApiClient]:
    return scoring_testing.running_api(scoring_testing.app_settings(url))


def _lifecycle(url: str) -> AbstractAsyncContextManager[ApiClient]:
    return lifecycle_testing.running_api(lifecycle_testing.app_settings(url))


def _notification(url: str) -> AbstractAsyncContextManager[ApiClient]:
    return notification_testing.running_api(notification_testing.app_settings(url))


# A route of each service that takes a JSON body (any route would do: the limit comes first).
SERVICES: dict[str, tuple[RunningApi, str]] = {
    "profile-service": (_profile, "/v1/customers"),
    "scoring-service": (_scoring, "/v1/models/fit"),
    "lifecycle-service": (_lifecycle, "/v1/sweeps"),
    "notification-service": (_notification, "/v1/rules"),
}


class CountedBody:
    """A request body streamed in chunks, counting how many chunks the server pulled."""

    def __init__(self, total: int, *, release: asyncio.Event | None = None) -> None:
        self.total = total
        self.pulled = 0
        self.first_pulled = asyncio.Event()
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        sent = 0
        while sent < self.total:
            size = min(CHUNK, self.total - sent)
            self.pulled += 1
            sent += size
            yield b" " * size
            self.first_pulled.set()
            if self._release is not None:
                await self._release.wait()

    @property
    def pulled_bytes(self) -> int:
        return self.pulled * CHUNK


def limit_of(api: ApiClient) -> int:
    limit: int = api.app.state.settings.max_request_body_bytes
    return limit


def assert_content_too_large(response: Any, limit: int) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 413
    assert problem["max_body_bytes"] == limit
    assert str(limit) in problem["detail"]


@dataclass(frozen=True)
class Target:
    """A running service and a route of it that takes a body."""

    api: ApiClient
    path: str


@pytest.fixture(params=sorted(SERVICES))
async def service(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    running, path = SERVICES[request.param]
    async with running(f"sqlite+aiosqlite:///{tmp_path / 'service.db'}") as api:
        yield Target(api, path)


async def test_a_declared_oversized_body_is_refused_without_reading_it(service: Target) -> None:
    limit = limit_of(service.api)
    assert limit <= 1024 * 1024
    body = CountedBody(limit * 4)
    response = await service.api.post(
        service.path,
        Scope.ADMIN,
        content=body,
        headers={"Content-Type": "application/json", "Content-Length": str(body.total)},
    )
    assert_content_too_large(response, limit)
    assert body.pulled == 0


async def test_a_chunked_oversized_body_is_refused_once_past_the_limit(
    service: Target,
) -> None:
    limit = limit_of(service.api)
    body = CountedBody(limit * 4)
    response = await service.api.post(
        service.path,
        Scope.ADMIN,
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert_content_too_large(response, limit)
    # Nothing past the chunk that crossed the limit was read.
    assert body.pulled_bytes <= limit + CHUNK


async def test_an_unauthenticated_oversized_body_is_refused_too(service: Target) -> None:
    limit = limit_of(service.api)
    response = await service.api.client.post(service.path, content=b" " * (limit + 1))
    assert_content_too_large(response, limit)


async def test_a_body_at_the_limit_is_read(tmp_path: Path) -> None:
    async with _profile(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}") as api:
        limit = limit_of(api)
        start = b'{"first_name": "Ada", "email": "ada@example.com"}'
        at_limit = start + b" " * (limit - len(start))
        created = await api.post(
            "/v1/customers", content=at_limit, headers={"Content-Type": "application/json"}
        )
        assert created.status_code == 201, created.text
        over = await api.post(
            "/v1/customers", content=at_limit + b" ", headers={"Content-Type": "application/json"}
        )
        assert over.status_code == 413


async def test_the_import_route_takes_a_larger_body_up_to_its_own_limit(tmp_path: Path) -> None:
    settings = profile_testing.app_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
        max_request_body_bytes=64 * 1024,
        import_max_body_bytes=512 * 1024,
    )
    rows = "".join(f"shop:{n},customer{n}@example.com,Name{n}\n" for n in range(8_000))
    csv = ("external_id,email,first_name\n" + rows).encode()
    assert 64 * 1024 < len(csv) < 512 * 1024
    headers = {"Content-Type": "text/csv"}
    async with profile_testing.running_api(settings) as api:
        imported = await api.post("/v1/customers/import", content=csv, headers=headers)
        assert imported.status_code == 200, imported.text
        assert imported.json()["customers_created"] == 8_000
        too_big = await api.post("/v1/customers/import", content=csv * 2, headers=headers)
        assert_content_too_large(too_big, 512 * 1024)
        # The larger limit is the import route's alone.
        other = await api.post("/v1/customers", content=csv, headers=headers)
        assert_content_too_large(other, 64 * 1024)


async def test_an_oversized_body_in_flight_does_not_hold_up_a_small_order(
    tmp_path: Path,
) -> None:
    async with _profile(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}") as api:
        release = asyncio.Event()
        huge = CountedBody(17 * 1024 * 1024, release=release)
        upload = asyncio.create_task(
            api.post("/v1/customers", content=huge, headers={"Content-Type": "application/json"})
        )
        await huge.first_pulled.wait()
        placed_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        order = await api.post(
            "/v1/orders",
            json={
                "type": "order.placed",
                "order_id": "ord-small",
                "customer": {"email": "small@example.com"},
                "placed_at": placed_at,
                "total": {"amount": "9.90", "currency": "USD"},
            },
        )
        assert order.status_code == 202, order.text
        release.set()
        refused = await upload
        assert_content_too_large(refused, limit_of(api))
        assert huge.pulled_bytes <= limit_of(api) + CHUNK
