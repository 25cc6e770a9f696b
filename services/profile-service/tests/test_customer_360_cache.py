"""The cached 360 bodies: the same answer as a fresh read, whoever changed the customer.

Bodies are kept per process on PostgreSQL only, and emptied when this process writes (before
the write answers) or when the 360's tables notify a change made anywhere else.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from crm_shared import Scope, create_engine
from profile_service.api._common import customer_360_body
from profile_service.api.schemas import Customer360
from profile_service.settings import ProfileSettings
from profile_service.workflows import customer_view
from profile_testing import (
    Api,
    app_settings,
    cache_of,
    listening,
    read_360,
    read_until_cached,
    running_api,
    wait_for,
)


@pytest.mark.postgres
async def test_a_360_is_served_from_the_cache_until_this_process_writes(pg_api: Api) -> None:
    customer = await pg_api.create_customer(email="kept@example.com", first_name="Ann")
    kept = await read_until_cached(pg_api, customer["id"])
    # The kept body is the one a fresh read gives, with the same headers.
    fresh = await customer_view.stored_360(
        pg_api.app.state.runtime.engine, customer["id"], recent=20
    )
    assert kept == customer_360_body(fresh)
    again = await pg_api.get(f"/v1/customers/{customer['id']}/360")
    assert again.content == kept
    assert again.headers["content-type"] == "application/json"

    patched = await pg_api.client.patch(
        f"/v1/customers/{customer['id']}",
        json={"first_name": "Anna"},
        headers=pg_api.as_(Scope.WRITE),
    )
    assert patched.status_code == 200
    # Read at once, on the same process: the write emptied the cache before it answered.
    assert cache_of(pg_api).get(customer["id"]) is None
    profile = (await read_360(pg_api, customer["id"]))["profile"]
    assert isinstance(profile, dict)
    assert profile["first_name"] == "Anna"

    granted = await pg_api.put(
        f"/v1/customers/{customer['id']}/consents/email/marketing",
        json={"granted": True, "source": "web"},
    )
    assert granted.status_code in (200, 201), granted.text
    consents = (await read_360(pg_api, customer["id"]))["consents"]
    assert isinstance(consents, list)
    assert [c["granted"] for c in consents] == [True]

    erased = await pg_api.client.delete(
        f"/v1/customers/{customer['id']}", headers=pg_api.as_(Scope.ADMIN)
    )
    assert erased.status_code == 204
    gone = await pg_api.get(f"/v1/customers/{customer['id']}/360")
    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"


@pytest.mark.postgres
async def test_a_change_made_by_another_process_reaches_the_cache(
    pg_api: Api, postgres_url: str
) -> None:
    customer = await pg_api.create_customer(email="elsewhere@example.com", first_name="Bo")
    await read_until_cached(pg_api, customer["id"])

    # Another replica (or an operator) writes: nothing of this process runs.
    other = create_engine(postgres_url)
    try:
        async with other.begin() as connection:
            statement = text("UPDATE customers SET first_name = 'Bob' WHERE id = :id")
            await connection.execute(statement, {"id": customer["id"]})
    finally:
        await other.dispose()

    async def shows_the_change() -> bool:
        profile = (await read_360(pg_api, customer["id"]))["profile"]
        return isinstance(profile, dict) and profile["first_name"] == "Bob"

    await wait_for(shows_the_change, "the 360 shows a change committed by another process")


@pytest.mark.postgres
async def test_nothing_is_cached_while_the_listener_is_down(pg_api: Api, postgres_url: str) -> None:
    customer = await pg_api.create_customer(email="lost@example.com")
    await read_until_cached(pg_api, customer["id"])
    cache = cache_of(pg_api)

    other = create_engine(postgres_url)
    try:
        async with other.begin() as connection:
            ended = await connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            )
            assert ended.scalars().all() == [True]
    finally:
        await other.dispose()

    async def listener_lost_or_back() -> bool:
        # Losing the listener empties the cache; it may already be listening again.
        return cache.get(customer["id"]) is None

    await wait_for(listener_lost_or_back, "the cache is emptied when its listener is lost")
    await listening(pg_api)
    assert await read_until_cached(pg_api, customer["id"])


async def test_sqlite_keeps_no_360s(api: Api) -> None:
    customer = await api.create_customer(email="fresh@example.com")
    await read_360(api, customer["id"])
    cache = cache_of(api)
    if api.app.state.settings.database_url.startswith("sqlite"):
        assert not cache.enabled
        assert cache.get(customer["id"]) is None


def test_the_cache_settings_and_their_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = ProfileSettings()
    assert defaults.customer_360_cache_seconds == 30.0
    assert defaults.customer_360_cache_entries == 10_000
    monkeypatch.setenv("PROFILE_CUSTOMER_360_CACHE_SECONDS", "0")
    monkeypatch.setenv("PROFILE_CUSTOMER_360_CACHE_ENTRIES", "50")
    configured = ProfileSettings()
    assert configured.customer_360_cache_seconds == 0
    assert configured.customer_360_cache_entries == 50
    monkeypatch.setenv("PROFILE_CUSTOMER_360_CACHE_SECONDS", "-1")
    with pytest.raises(ValueError, match="customer_360_cache_seconds"):
        ProfileSettings()


@pytest.mark.postgres
async def test_a_cache_switched_off_reads_every_time(postgres_url: str) -> None:
    settings = app_settings(postgres_url, customer_360_cache_seconds=0)
    async with running_api(settings) as api:
        customer = await api.create_customer(email="off@example.com")
        await read_360(api, customer["id"])
        assert not cache_of(api).enabled
        assert cache_of(api).get(customer["id"]) is None


@pytest.mark.postgres
async def test_a_cached_360_is_answered_as_the_route_answers_it(pg_api: Api) -> None:
    customer = await pg_api.create_customer(email="same@example.com", first_name="Cy")
    url = f"/v1/customers/{customer['id']}/360"
    await read_until_cached(pg_api, customer["id"])
    # The first answers came from the route; this one is served before routing.
    headers = {**pg_api.as_(Scope.READ), "X-Request-ID": "cached-read-1"}
    served = await pg_api.client.get(url, headers=headers)
    assert served.status_code == 200
    assert served.content == cache_of(pg_api).get(customer["id"])
    assert served.headers["content-type"] == "application/json"
    assert served.headers["content-length"] == str(len(served.content))
    assert served.headers["x-request-id"] == "cached-read-1"
    assert sorted(served.headers) == ["content-length", "content-type", "x-request-id"]
    # The documented shape (the OpenAPI schema is Customer360's), field for field.
    assert Customer360.model_validate_json(served.content).model_dump(mode="json") == served.json()

    # The key is checked as the route checks it, with the route's problems.
    for bad in ({}, {"X-API-Key": "crm_not-a-key"}):
        refused = await pg_api.client.get(url, headers=bad)
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"

    metrics = (await pg_api.client.get("/metrics")).text
    assert (
        'http_requests_total{method="GET",route="/v1/customers/{customer_id}/360",status="200"}'
        in metrics
    )
    assert 'route="/v1/customers/{customer_id}/360",status="401"' in metrics
    hits = 'read_cache_lookups_total{cache="customer_360_changes",outcome="hit"}'
    assert hits in metrics
    assert 'read_cache_entries{cache="customer_360_changes"}' in metrics
