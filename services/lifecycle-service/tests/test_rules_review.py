"""After a rules change the sweep reviews every buyer under the new rules, once, resumably.

``replace_rules`` stores a version only; the next sweep walks every buyer (PostgreSQL: in
physical order; SQLite: by customer id; unlocked, writing only what changes), records its
progress so a stopped sweep resumes, and leaves customers a consumer is changing to a locked
review after that consumer commits.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts import Grade, Stage, ValueTier
from crm_shared import Scope, utc_now
from crm_shared.testing import ApiClient
from lifecycle_service.db.models import RulesReview
from lifecycle_service.domain.churn_warnings import ChurnWarningRecord
from lifecycle_service.domain.review import next_review_at
from lifecycle_service.domain.review_arrays import to_microseconds
from lifecycle_service.domain.rules import Band, StageRules
from lifecycle_service.domain.stages import CustomerLifecycle, on_sweep
from lifecycle_service.domain.warning_policy import warning_changes
from lifecycle_service.events.event_batch import apply_events
from lifecycle_service.workflows.customer_rows import (
    CUSTOMERS,
    WARNINGS,
    load_customers,
    state_values,
    warning_values,
)
from lifecycle_service.workflows.rules_walk import START, format_position, parse_position
from lifecycle_service.workflows.sweep import sweep
from lifecycle_service.workflows.sweep_postgres import (
    CheckedWrites,
    load_block_range_arrays,
    table_extent,
)
from lifecycle_testing import app_settings, order, running_api

STORED_AT = datetime(2026, 11, 1, tzinfo=UTC)  # when the base was last reviewed (old rules)
AS_OF = STORED_AT + timedelta(days=1, hours=1)  # the sweep after the rules change
DAY = timedelta(days=1)
OLD = StageRules()
# Tighter silence thresholds: some active buyers become at risk, some are warned.
NEW = replace(OLD, at_risk_rhythm=Band(enter=1.8, leave=1.5), warning_silence_factor=1.3)
NEW_DOCUMENT = {"at_risk_rhythm": {"enter": 1.8, "leave": 1.5}, "warning_silence_factor": 1.3}


def _buyer(n: int, silent_days: float) -> CustomerLifecycle:
    last = STORED_AT - silent_days * DAY
    return CustomerLifecycle(
        customer_id=f"c-{n:02d}",
        stage=Stage.ACTIVE,
        stage_since=last,
        first_purchase_at=last - 400 * DAY,
        last_purchase_at=last,
        order_count=4,
        average_order_value=80.0,
        last_order_value=75.5,
        expected_interpurchase_days=30.0,
        churn_risk=0.2,
        value_tier=ValueTier.GROWTH,
        grade=Grade.MEDIUM,
        predicted_clv_12m=310.25,
        scores_as_of=last,
    )


def _reviewed(
    state: CustomerLifecycle, warning: ChurnWarningRecord | None, rules: StageRules, at: datetime
) -> tuple[CustomerLifecycle, list[ChurnWarningRecord], datetime | None]:
    """What a sweep at ``at`` under ``rules`` leaves: state, warning changes, review time."""
    moved, _ = on_sweep(state, at, rules)
    changes = warning_changes(warning, moved, rules, at, f"w-{state.customer_id}-{at:%j}")
    current = changes[-1] if changes else warning
    return moved, changes, next_review_at(moved, current, rules, max(state.stage_since, at))


# Silences of 20 to 70 days at a 30-day rhythm: around 1.3x (warning), 1.8x and 2x (at risk).
SILENCES = (20.0, 38.0, 41.0, 50.0, 53.0, 55.0, 57.0, 59.0, 61.0, 70.0)


async def _store_base(api: ApiClient) -> list[str]:
    """Buyers as the old rules left them at STORED_AT, and a prospect; the buyers' ids."""
    customers: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for n, silence in enumerate(SILENCES, start=1):
        state, changes, review = _reviewed(_buyer(n, silence), None, OLD, STORED_AT)
        values = {**state_values(state), "active_months": [], "clv_currency": "USD"}
        customers.append(values | {"next_review_at": review})
        warnings += [warning_values(w) for w in changes]
    prospect = CustomerLifecycle("c-00", Stage.PROSPECT, STORED_AT - 10 * DAY)
    customers.append(
        {
            **state_values(prospect),
            "active_months": [],
            "clv_currency": None,
            "next_review_at": None,
        }
    )
    async with api.app.state.runtime.sessions() as session, session.begin():
        await session.execute(insert(CUSTOMERS), customers)
        if warnings:
            await session.execute(insert(WARNINGS), warnings)
    return [f"c-{n:02d}" for n in range(1, len(SILENCES) + 1)]


async def _replace_rules(api: ApiClient) -> int:
    response = await api.put("/v1/rules", Scope.ADMIN, json={"rules": NEW_DOCUMENT})
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


async def _stored(api: ApiClient) -> dict[str, tuple[str, datetime | None]]:
    async with api.app.state.runtime.sessions() as session:
        rows = await session.execute(
            select(CUSTOMERS.c.customer_id, CUSTOMERS.c.stage, CUSTOMERS.c.next_review_at)
        )
        return {row.customer_id: (row.stage, row.next_review_at) for row in rows}


async def _progress(api: ApiClient, version: int) -> RulesReview | None:
    async with api.app.state.runtime.sessions() as session:
        return await session.get(RulesReview, version)


def _on_postgres(api: ApiClient) -> bool:
    return bool(api.app.state.runtime.engine.dialect.name == "postgresql")


async def _position_after(session: AsyncSession, customer_id: str) -> str | None:
    """Where a walk in physical order (PostgreSQL) goes on after ``customer_id``'s row."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    tid = await session.scalar(
        text("SELECT ctid::text FROM customer_lifecycles WHERE customer_id = :id"),
        {"id": customer_id},
    )
    block, offset = parse_position(tid)
    return format_position((block, offset + 1))


async def _walked_past(api: ApiClient, progress: RulesReview | None) -> set[str]:
    """The customers (buyers or not) the walk recorded in ``progress`` has passed: by id on
    SQLite, in physical order (the rows stored before its position) on PostgreSQL."""
    assert progress is not None
    async with api.app.state.runtime.sessions() as session:
        if _on_postgres(api):
            query = text(
                "SELECT customer_id FROM customer_lifecycles"
                " WHERE ctid < CAST(CAST(:at AS text) AS tid)"
            )
            return set(await session.scalars(query, {"at": progress.walk_position}))
        query = text("SELECT customer_id FROM customer_lifecycles WHERE customer_id <= :id")
        return set(await session.scalars(query, {"id": progress.last_customer_id}))


async def _is_under_new_rules(api: ApiClient, customer_ids: list[str]) -> dict[str, bool]:
    """Whether each customer is what a sweep at AS_OF under NEW leaves (a fixed point)."""
    async with api.app.state.runtime.sessions() as session:
        stored = await load_customers(session, customer_ids)
    verdict = {}
    for customer_id, customer in stored.items():
        moved, changes, review = _reviewed(customer.state, customer.warning, NEW, AS_OF)
        verdict[customer_id] = (
            moved.stage is customer.state.stage
            and not changes
            and review == customer.next_review_at
        )
    return verdict


async def test_a_rules_change_is_applied_to_every_buyer_by_the_next_sweep(
    lifecycle_api: ApiClient,
) -> None:
    buyers = await _store_base(lifecycle_api)
    runtime = lifecycle_api.app.state.runtime
    before = await _stored(lifecycle_api)
    version = await _replace_rules(lifecycle_api)
    assert await _stored(lifecycle_api) == before  # the change itself rewrites nobody

    report = await sweep(runtime, AS_OF, chunk_size=3, trigger="test", clock=utc_now)

    stored = await _stored(lifecycle_api)
    expected_moves = 0
    for n, silence in enumerate(SILENCES, start=1):
        old_state, old_warnings, _ = _reviewed(_buyer(n, silence), None, OLD, STORED_AT)
        current = old_warnings[-1] if old_warnings else None
        state, _, review = _reviewed(old_state, current, NEW, AS_OF)
        expected_moves += state.stage is not old_state.stage
        assert stored[state.customer_id] == (state.stage.value, review), state.customer_id
    assert expected_moves > 0  # the tighter rules really move someone
    assert (report.reviewed, report.moved) == (len(buyers), expected_moves)
    assert stored["c-00"] == before["c-00"]  # a prospect is not walked
    progress = await _progress(lifecycle_api, version)
    assert progress is not None
    assert progress.completed_at is not None
    assert progress.reviewed == len(buyers)
    assert await _walked_past(lifecycle_api, progress) == set(buyers) | {"c-00"}
    assert all((await _is_under_new_rules(lifecycle_api, buyers)).values())

    again = await sweep(runtime, AS_OF, chunk_size=3, trigger="test", clock=utc_now)
    assert (again.reviewed, again.moved) == (0, 0)  # reviewed once per rules version


async def test_a_stopped_review_resumes_after_the_last_customer_it_committed(
    lifecycle_api: ApiClient,
) -> None:
    buyers = await _store_base(lifecycle_api)
    version = await _replace_rules(lifecycle_api)
    before = await _stored(lifecycle_api)
    # As a sweep that committed its chunks up to c-04 and then stopped leaves it.
    async with lifecycle_api.app.state.runtime.sessions() as session, session.begin():
        session.add(
            RulesReview(
                rules_version=version,
                started_at=utc_now(),
                last_customer_id="c-04",
                walk_position=await _position_after(session, "c-04"),
                reviewed=4,
            )
        )
    stopped = await _walked_past(lifecycle_api, await _progress(lifecycle_api, version))
    assert stopped & set(buyers) == set(buyers[:4])

    runtime = lifecycle_api.app.state.runtime
    report = await sweep(runtime, AS_OF, chunk_size=2, trigger="test", clock=utc_now)

    stored = await _stored(lifecycle_api)
    done, rest = buyers[:4], buyers[4:]
    assert {c: stored[c] for c in done} == {c: before[c] for c in done}  # not reviewed twice
    assert report.reviewed == len(rest)
    assert all((await _is_under_new_rules(lifecycle_api, rest)).values())
    progress = await _progress(lifecycle_api, version)
    assert progress is not None
    assert progress.completed_at is not None
    assert progress.reviewed == len(buyers)


async def _wait_for_a_lock_wait(api: ApiClient) -> None:
    """Until a session of this database waits for a row lock (the sweep, for the consumer)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(120):
        while True:
            async with api.app.state.runtime.engine.connect() as connection:
                if (await connection.execute(query)).scalar_one():
                    return
            await asyncio.sleep(0.05)


@pytest.mark.postgres
async def test_an_order_applied_during_the_review_is_kept_and_reviewed_under_the_new_rules(
    postgres_url: str,
) -> None:
    async with running_api(app_settings(postgres_url)) as api:
        buyers = await _store_base(api)
        await _replace_rules(api)
        runtime = api.app.state.runtime
        ordered_at = AS_OF - timedelta(hours=2)
        # The consumer's batch: c-07 (at risk under the new rules) orders; not committed yet.
        applied, release = asyncio.Event(), asyncio.Event()

        async def consumer_batch() -> None:
            async with runtime.sessions() as session, session.begin():
                await apply_events(session, [order("c-07", "o-1", ordered_at, "120.00")])
                applied.set()
                await release.wait()

        batch = asyncio.create_task(consumer_batch())
        await applied.wait()
        swept = asyncio.create_task(
            sweep(runtime, AS_OF, chunk_size=3, trigger="test", clock=utc_now)
        )
        # The review reaches c-07, sees it held by the batch, and waits for it.
        await _wait_for_a_lock_wait(api)
        assert not swept.done()
        release.set()
        await batch
        report = await swept

        async with runtime.sessions() as session:
            c07 = (await load_customers(session, ["c-07"]))["c-07"]
        assert (c07.state.order_count, c07.state.last_purchase_at) == (5, ordered_at)
        assert c07.state.stage is Stage.ACTIVE  # the order, not the old silence, decides
        assert report.reviewed == len(buyers)
        assert all((await _is_under_new_rules(api, buyers)).values())


@pytest.mark.postgres
async def test_review_times_gathered_over_ranges_are_written_in_key_order_where_unchanged(
    postgres_url: str,
) -> None:
    async with running_api(app_settings(postgres_url)) as api:
        buyers = await _store_base(api)
        runtime = api.app.state.runtime
        async with runtime.sessions() as session:
            end_block, _ = await table_extent(session)
            chunk = await load_block_range_arrays(session, START, (end_block, 0))
        assert chunk is not None
        writes = CheckedWrites()
        # Two "ranges" of the same read, kept in reverse key order; new review times for all.
        rows = np.argsort(np.array(chunk.customer_ids, dtype=object))[::-1]
        new_times = chunk.next_review_at + 3_600_000_000
        for part in (rows[:5], rows[5:]):
            writes.add(chunk, part, new_times[part])
        # A consumer's batch changes c-07 after the read and commits.
        async with runtime.sessions() as session, session.begin():
            await apply_events(session, [order("c-07", "o-1", AS_OF - DAY, "120.00")])
        before = await _stored(api)

        batches = writes.take_in_key_order(3)
        assert not writes  # taken
        left: list[str] = []
        for batch in batches:
            async with runtime.sessions() as session, session.begin():
                left += await batch.write(session)

        assert [key for batch in batches for key in batch.keys] == sorted(buyers)
        assert left == ["c-07"]  # passed over: the consumer's version stays
        stored = await _stored(api)
        assert stored["c-07"] == before["c-07"]
        expected = dict(zip(chunk.customer_ids, new_times.tolist(), strict=True))
        for customer_id in set(buyers) - {"c-07"}:
            review = stored[customer_id][1]
            assert review is not None
            assert to_microseconds(review) == expected[customer_id], customer_id
