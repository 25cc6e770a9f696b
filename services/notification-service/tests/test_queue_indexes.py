"""Every query over the delivery queue reaches its partial index, in a generic plan too.

A partial index serves a query only if PostgreSQL can prove the query's condition implies
the index's predicate; a predicate value sent as a parameter cannot be proven in a generic
plan (the one a prepared statement settles on), so the queries name it word for word. Each
query is captured as the service sends it, prepared, and explained as a generic plan with
sequential scans priced out: the plan must name the query's index.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from notification_servers import SmtpSink
from sqlalchemy import event

from crm_shared import utc_now
from crm_shared.testing import ApiClient
from notification_service.workflows import delivery_inputs, due_rows, effects, interrupted_sends
from notification_testing import app_settings, running_api


async def _sent_statements(api: ApiClient, run: Callable[[], Awaitable[object]]) -> list[str]:
    """The statements over ``notifications`` that ``run`` sends."""
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM notifications" in statement:
            sent.append(statement)

    engine = api.app.state.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        await run()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    return sent


async def _generic_plan(api: ApiClient, statement: str) -> str:
    async with api.app.state.runtime.sessions() as session, session.begin():
        connection = await session.connection()
        await connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        await connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await connection.exec_driver_sql(f"PREPARE queue_query AS {statement}")
        types = (
            await connection.exec_driver_sql(
                "SELECT parameter_types::text[] FROM pg_prepared_statements "
                "WHERE name = 'queue_query'"
            )
        ).scalar_one()
        # A generic plan does not look at the values: nulls of the parameters' types will do.
        arguments = ", ".join(f"NULL::{kind}" for kind in types)
        plan = await connection.exec_driver_sql(
            f"EXPLAIN EXECUTE queue_query({arguments})" if types else "EXPLAIN EXECUTE queue_query"
        )
        lines = [line for (line,) in plan]
        await connection.exec_driver_sql("DEALLOCATE queue_query")
    return "\n".join(lines)


async def test_the_queues_queries_use_their_partial_indexes(postgres_url: str, mail: SmtpSink):
    settings = app_settings(postgres_url, smtp_host=mail.host, smtp_port=mail.port)
    async with running_api(settings) as api:
        runtime = api.app.state.runtime
        now = utc_now()

        async def claim() -> object:
            async with runtime.sessions() as session, session.begin():
                return await due_rows.claim_due(session, now, 10)

        async def cap() -> object:
            async with runtime.sessions() as session:
                return await delivery_inputs.recent_marketing_sends(
                    session, ["c1", "c2"], now, settings.policy()
                )

        async def report() -> object:
            query = effects.EffectQuery("welcome", now - timedelta(days=9), now, timedelta(days=3))
            async with runtime.sessions() as session:
                return await effects.measure_rules(session, query, now)

        async def recovery() -> object:
            return await interrupted_sends.recover(
                runtime, sender="s1", stale_before=now, now=now, max_attempts=3
            )

        expected = {
            "ix_notifications_scheduled_due": claim,
            "ix_notifications_marketing_sends": cap,
            "ix_notifications_rule_assignment": report,
            "ix_notifications_sending": recovery,
        }
        for index, run in expected.items():
            sent = await _sent_statements(api, run)
            assert sent, f"no statement over notifications for {index}"
            plan = await _generic_plan(api, sent[0])
            assert index in plan, f"{sent[0]}\n{plan}"
