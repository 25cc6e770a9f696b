"""The 360 cache forgets only the customers a change touched, whoever made the change.

Each writing statement on a 360 table names the customers it touched (migration
2026_12_07d-customer_360_changes_by_customer): other processes hear them by NOTIFY, the
writing process by the statement's NOTICE before its write answers. Changes made elsewhere
are awaited as a state (the changed customer's body gone from the cache), never by time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm_shared import Scope, create_engine, utc_now
from profile_service.workflows.gdpr import erase_customer
from profile_service.workflows.merging import merge_customers
from profile_testing import Api, cache_of, read_360, read_until_cached, wait_for

CHANNEL = "customer_360_changes"
pytestmark = pytest.mark.postgres


@asynccontextmanager
async def another_process(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine of its own, as another replica or an operator would write."""
    other = create_engine(postgres_url)
    try:
        yield other
    finally:
        await other.dispose()


async def forgotten(api: Api, customer_id: str) -> None:
    """Wait until the cache no longer holds `customer_id`'s 360 (its change was heard)."""

    async def gone() -> bool:
        return cache_of(api).get(customer_id) is None

    await wait_for(gone, f"the cached 360 of {customer_id} is invalidated")


async def test_a_change_made_elsewhere_forgets_only_its_customer(
    pg_api: Api, postgres_url: str
) -> None:
    changed = await pg_api.create_customer(email="changed@example.com", first_name="Di")
    untouched = await pg_api.create_customer(email="untouched@example.com", first_name="Ed")
    await read_until_cached(pg_api, changed["id"])
    kept = await read_until_cached(pg_api, untouched["id"])
    emptied_whole = cache_of(pg_api).invalidations

    async with another_process(postgres_url) as other, other.begin() as connection:
        await connection.execute(
            text("UPDATE customers SET first_name = 'Dina' WHERE id = :id"), {"id": changed["id"]}
        )
        await connection.execute(
            text(
                "INSERT INTO view_scores (customer_id, as_of, event_id, scores) "
                "VALUES (:id, now(), 'evt-elsewhere', CAST(:scores AS jsonb))"
            ),
            {"id": changed["id"], "scores": json.dumps({"churn_risk": 0.5})},
        )

    await forgotten(pg_api, changed["id"])
    view = await read_360(pg_api, changed["id"])
    assert view["profile"]["first_name"] == "Dina"
    assert view["scores"] == {"churn_risk": 0.5}
    # The other customer's body was never dropped, and nothing emptied the whole cache.
    assert cache_of(pg_api).get(untouched["id"]) == kept
    assert cache_of(pg_api).invalidations == emptied_whole


async def test_this_process_forgets_what_it_wrote_before_the_write_answers(pg_api: Api) -> None:
    written = await pg_api.create_customer(email="written@example.com", first_name="Fay")
    untouched = await pg_api.create_customer(email="bystander@example.com", first_name="Gus")
    await read_until_cached(pg_api, written["id"])
    kept = await read_until_cached(pg_api, untouched["id"])
    emptied_whole = cache_of(pg_api).invalidations

    granted = await pg_api.put(
        f"/v1/customers/{written['id']}/consents/sms/marketing",
        json={"granted": True, "source": "web"},
    )
    assert granted.status_code in (200, 201), granted.text
    # No waiting: the consent's statement named its customer to this process's connection.
    assert cache_of(pg_api).get(written["id"]) is None
    consents = (await read_360(pg_api, written["id"]))["consents"]
    assert [(c["channel"], c["granted"]) for c in consents] == [("sms", True)]
    assert cache_of(pg_api).get(untouched["id"]) == kept
    assert cache_of(pg_api).invalidations == emptied_whole


async def test_a_merge_made_elsewhere_forgets_both_customers(
    pg_api: Api, postgres_url: str
) -> None:
    survivor = await pg_api.create_customer(email="survivor@example.com", external_id="ext-s")
    duplicate = await pg_api.create_customer(email="duplicate@example.com", external_id="ext-d")
    await read_until_cached(pg_api, survivor["id"])
    await read_until_cached(pg_api, duplicate["id"])

    async with another_process(postgres_url) as other, AsyncSession(other) as session:
        await merge_customers(
            session,
            surviving_id=survivor["id"],
            merged_id=duplicate["id"],
            requested_by="elsewhere",
            reason="same person",
            now=utc_now(),
        )
        await session.commit()

    await forgotten(pg_api, survivor["id"])
    await forgotten(pg_api, duplicate["id"])
    merged_view = await read_360(pg_api, survivor["id"])
    assert sorted(merged_view["profile"]["external_ids"]) == ["ext-d", "ext-s"]
    redirected = await pg_api.get(f"/v1/customers/{duplicate['id']}/360")
    assert redirected.status_code == 308


async def test_an_erasure_made_elsewhere_forgets_the_customer(
    pg_api: Api, postgres_url: str
) -> None:
    erased = await pg_api.create_customer(email="erased@example.com")
    await read_until_cached(pg_api, erased["id"])

    async with another_process(postgres_url) as other, AsyncSession(other) as session:
        await erase_customer(session, erased["id"], now=utc_now())
        await session.commit()

    await forgotten(pg_api, erased["id"])
    gone = await pg_api.get(f"/v1/customers/{erased['id']}/360")
    assert gone.status_code == 410


async def test_too_many_customers_in_one_statement_empty_every_cache(
    pg_api: Api, postgres_url: str
) -> None:
    customer = await pg_api.create_customer(email="many@example.com")
    await read_until_cached(pg_api, customer["id"])
    emptied_whole = cache_of(pg_api).invalidations

    async with another_process(postgres_url) as other, other.begin() as connection:
        # 1,001 customers' view rows in one statement: more than are worth naming.
        await connection.execute(
            text(
                "INSERT INTO view_stages (customer_id, stage, stage_changed_at) "
                "SELECT 'bulk-' || n, 'active', now() "
                "FROM generate_series(1, 1001) AS n"
            )
        )

    await forgotten(pg_api, customer["id"])
    assert cache_of(pg_api).invalidations > emptied_whole


async def heard_payloads(postgres_url: str, statement: str) -> list[str]:
    """The NOTIFY payloads of `statement`, run in its own transaction, as a listener hears them."""
    dsn = postgres_url.replace("postgresql+asyncpg://", "postgresql://")
    listener = await asyncpg.connect(dsn)
    writer = await asyncpg.connect(dsn)
    payloads: list[str] = []
    ended = asyncio.Event()

    def heard(*args: object) -> None:
        payload = str(args[-1])
        if payload == "end":
            ended.set()
        else:
            payloads.append(payload)

    try:
        await listener.add_listener(CHANNEL, heard)
        await writer.execute(statement)
        await writer.execute("NOTIFY customer_360_changes, 'end'")  # delivered after it, in order
        await ended.wait()
        return payloads
    finally:
        await writer.close()
        await listener.close()


async def test_many_customers_are_named_in_payloads_under_notify_s_limit(
    postgres_url: str, pg_api: Api
) -> None:
    ids = [f"customer-{n:04d}-{'x' * 60}" for n in range(900)]
    listed = ", ".join(f"'{customer_id}'" for customer_id in ids)
    payloads = await asyncio.wait_for(
        heard_payloads(postgres_url, f"SELECT customer_360_changed(ARRAY[{listed}])"), 30
    )
    assert len(payloads) > 1
    assert all(len(payload.encode()) < 8000 for payload in payloads)
    named = [customer_id for payload in payloads for customer_id in json.loads(payload)]
    assert sorted(named) == ids

    too_long = await asyncio.wait_for(
        heard_payloads(postgres_url, f"SELECT customer_360_changed(ARRAY['{'y' * 3001}'])"), 30
    )
    assert too_long == [""]  # an id that might not fit: every customer instead
    nothing = await asyncio.wait_for(
        heard_payloads(postgres_url, "UPDATE customers SET locale = 'de' WHERE id = 'none'"), 30
    )
    assert nothing == []  # a statement that touched no row tells nobody


async def test_a_write_answered_before_a_read_starts_is_never_served_stale(
    pg_api: Api, postgres_url: str
) -> None:
    # Written through this process: the body is fresh at once, each time.
    customer = await pg_api.create_customer(email="rw@example.com", first_name="Hal")
    for name in ("Ida", "Jo", "Kim"):
        await read_until_cached(pg_api, customer["id"])
        patched = await pg_api.client.patch(
            f"/v1/customers/{customer['id']}",
            json={"first_name": name},
            headers=pg_api.as_(Scope.WRITE),
        )
        assert patched.status_code == 200
        assert (await read_360(pg_api, customer["id"]))["profile"]["first_name"] == name
