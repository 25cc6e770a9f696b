"""A batch's contacts are read in time linear in contacts and ids, whatever plan is cached.

A prepared statement keeps the generic plan it made while ``contacts`` was a page of new
contacts (a service's first batches) until the table's statistics change. For
``customer_id = ANY($1)`` that plan is a sequential scan whose filter compares every contact
with every id of the batch: thousands of contacts times hundreds of ids a call once the table
has grown. Each read is captured as the service sends it and explained as a generic plan, on a
table analysed small and again analysed at size.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import event as sql_event
from sqlalchemy import text

from crm_shared import utc_now
from crm_shared.testing import ApiClient
from notification_service.events.handlers import apply_events
from notification_service.workflows import contacts, delivery_inputs
from notification_testing import app_settings, order, running_api


async def _contact_reads(api: ApiClient, ids: list[str]) -> list[str]:
    """The statements over ``contacts`` that the stream's and the decision's reads send."""
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM contacts" in statement:
            sent.append(statement)

    engine = api.app.state.runtime.engine.sync_engine
    sql_event.listen(engine, "before_cursor_execute", capture)
    try:
        async with api.app.state.runtime.sessions() as session, session.begin():
            await contacts.load_stream_contacts(session, ids)
            await delivery_inputs.customers(session, ids)
    finally:
        sql_event.remove(engine, "before_cursor_execute", capture)
    assert len(sent) == 2
    return sent


async def _generic_plan(api: ApiClient, statement: str) -> str:
    async with api.app.state.runtime.sessions() as session, session.begin():
        connection = await session.connection()
        await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        await connection.exec_driver_sql(f"PREPARE contact_read AS {statement}")
        plan = await connection.exec_driver_sql("EXPLAIN EXECUTE contact_read(NULL::text[])")
        lines = [line for (line,) in plan]
        await connection.exec_driver_sql("DEALLOCATE contact_read")
    return "\n".join(lines)


async def _analyse(api: ApiClient) -> None:
    async with api.app.state.runtime.sessions() as session, session.begin():
        await session.execute(text("ANALYZE contacts"))


async def test_contact_reads_never_compare_every_contact_with_every_id(postgres_url: str):
    async with running_api(app_settings(postgres_url)) as api:
        now = utc_now()
        batch = [order(f"pl-c{i}", f"pl-o{i}", now - timedelta(minutes=1)) for i in range(30)]
        async with api.app.state.runtime.sessions() as session, session.begin():
            await apply_events(session, batch)
        ids = [f"pl-c{i}" for i in range(0, 60, 2)]

        # A page of contacts first seen in orders, no scores yet: no index pays.
        await _analyse(api)
        for statement in await _contact_reads(api, ids):
            plan = await _generic_plan(api, statement)
            assert "= ANY" not in plan, plan

        # At size the ids are looked up in the primary key.
        async with api.app.state.runtime.sessions() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO contacts (customer_id, scores, attributes, tags, "
                    "known_from_profile, order_count, updated_at) "
                    "SELECT 'pl-g' || n, jsonb_build_object('churn_risk', n, 'padding', "
                    "repeat('x', 600)), '{}'::jsonb, '[]'::jsonb, false, 1, now() "
                    "FROM generate_series(1, 5000) AS n"
                )
            )
        await _analyse(api)
        for statement in await _contact_reads(api, ids):
            plan = await _generic_plan(api, statement)
            assert "= ANY" not in plan, plan
            assert "pk_contacts" in plan, plan
