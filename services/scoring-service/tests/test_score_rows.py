"""Score rows written by the array upsert and by COPY alike; rows stored before change states
were kept are compared by their payload, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, text, update
from test_scores_api import AS_OF, a_base, apply, fit, outbox_size

from crm_shared.testing import ApiClient
from scoring_service.db.models import Score
from scoring_service.domain.score_changes import ScoreState, score_state
from scoring_service.workflows import score_publishing, score_rows
from scoring_service.workflows.scoring import rescore_all
from scoring_testing import app_settings, running_api

MOMENT = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def a_row(customer_id: str, n: int) -> tuple[Any, ...]:
    document = {"rfm_segment": "Loyal", "p_alive": n / 7, "n": n}
    state = score_state(document)
    return (
        customer_id,
        MOMENT,
        f"v{n}",
        "Loyal",
        None if n % 3 else "high",
        "B",
        None,
        n / 1000,
        Decimal(f"{n}.25"),
        "EUR",
        orjson.dumps(document).decode(),
        # Rows stored before explanation figures were kept have the text; newer ones figures.
        orjson.dumps({"why": [n, 0.1 + n / 3, None]}).decode() if n % 2 else None,
        None if n % 2 else bytes([n % 256]) * 369,
        state.packed(),
    )


async def stored(api: ApiClient, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    async with api.app.state.runtime.sessions() as session:
        rows = await session.execute(
            select(*(Score.__table__.c[name] for name in score_rows.COLUMNS)).where(
                Score.customer_id.in_(ids)
            )
        )
        return {row[0]: tuple(row) for row in rows}


async def write(api: ApiClient, rows: list[tuple[Any, ...]], *, none_stored: bool = False) -> None:
    async with api.app.state.runtime.sessions() as session, session.begin():
        await score_rows.write_scores(session, rows, none_stored=none_stored)


async def test_array_upsert_and_copy_store_the_same_rows(scoring_api: ApiClient) -> None:
    many = score_rows.COPY_FROM_ROWS  # by COPY on PostgreSQL
    await write(scoring_api, [a_row(f"big-{n:05d}", n) for n in range(many)])
    await write(scoring_api, [a_row(f"few-{n:05d}", n) for n in range(5)])  # one array upsert
    ids = [f"{kind}-{n:05d}" for kind in ("big", "few") for n in range(5)]
    found = await stored(scoring_api, ids)
    for n in range(5):
        big, few = found[f"big-{n:05d}"], found[f"few-{n:05d}"]
        assert big[1:] == few[1:]
        assert big[10] == {"rfm_segment": "Loyal", "p_alive": n / 7, "n": n}
        assert ScoreState.unpacked(bytes(big[13])) == score_state(big[10])
    # Both paths update a stored row in place.
    await write(scoring_api, [a_row("few-00001", 40), a_row("big-00002", 41)])
    again = await stored(scoring_api, ["few-00001", "big-00002"])
    assert again["few-00001"][2] == "v40"
    assert again["big-00002"][10]["n"] == 41


def refigured(row: tuple[Any, ...], n: int) -> tuple[Any, ...]:
    """`row` as a refit rewrites it: new as-of, version, churn risk, payload, explanation
    figures and state, about as long as before; the same segments and spend."""
    document = {"rfm_segment": "Loyal", "p_alive": n / 7 + 1, "n": n}
    return (
        row[0],
        row[1] + timedelta(days=7),
        "v-refit",
        *row[3:7],
        0.5 + n / 10_000,
        *row[8:10],
        orjson.dumps(document).decode(),
        row[11],
        None if row[12] is None else bytes([(n + 1) % 256]) * 369,
        score_state(document).packed(),
    )


@pytest.mark.parametrize("many", [5, score_rows.COPY_FROM_ROWS], ids=["upsert", "copy"])
async def test_a_refit_that_changes_no_segment_rewrites_every_row(
    postgres_url: str, many: int
) -> None:
    """A refit's rewrite (array upsert or COPY + merge) updates each stored row once, and the
    rows read back are the rewritten ones."""
    async with running_api(app_settings(postgres_url)) as api:
        rows = [a_row(f"hot-{n:05d}", n) for n in range(score_rows.COPY_FROM_ROWS)]
        await write(api, rows, none_stored=True)
        async with api.app.state.runtime.sessions() as session, session.begin():
            await score_rows.write_scores(
                session, [refigured(row, n) for n, row in enumerate(rows[:many])]
            )
            updated = (
                await session.execute(
                    text("select pg_stat_get_xact_tuples_updated('scores'::regclass)")
                )
            ).scalar_one()
        assert updated == many
        found = await stored(api, [row[0] for row in rows[:many]])
        assert found == {row[0]: as_read(refigured(row, n)) for n, row in enumerate(rows[:many])}


def as_read(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A written row as `stored` reads it back (JSON columns decoded)."""
    return tuple(
        orjson.loads(value) if i in (10, 11) and value is not None else value
        for i, value in enumerate(row)
    )


async def test_rows_said_new_are_copied_or_upserted_when_one_was_stored_after_all(
    scoring_api: ApiClient,
) -> None:
    many = score_rows.COPY_FROM_ROWS  # by COPY straight into scores on PostgreSQL
    await write(scoring_api, [a_row(f"new-{n:05d}", n) for n in range(many)], none_stored=True)
    # One of them stored meanwhile (a concurrent re-score): the chunk is upserted instead.
    await write(scoring_api, [a_row("new-00007", 70)])
    again = [a_row(f"new-{n:05d}", n + 1) for n in range(many)]
    await write(scoring_api, again, none_stored=True)
    ids = [f"new-{n:05d}" for n in range(many)]
    found = await stored(scoring_api, ids)
    assert len(found) == many
    assert {cid: (row[2], row[10]["n"]) for cid, row in found.items()} == {
        f"new-{n:05d}": (f"v{n + 1}", n + 1) for n in range(many)
    }


async def test_scores_stored_without_a_state_are_compared_by_payload_then_keep_one(
    scoring_api: ApiClient,
) -> None:
    await apply(scoring_api, a_base())
    await fit(scoring_api)
    published = await outbox_size(scoring_api)
    runtime, settings = scoring_api.app.state.runtime, scoring_api.app.state.settings
    async with runtime.sessions() as session, session.begin():
        # As a row stored before the migration of 2026-12-07e is.
        await session.execute(update(Score).values(change_state=None))

    assert await rescore_all(runtime, settings, as_of=AS_OF) == 0
    assert await outbox_size(scoring_api) == published
    async with runtime.sessions() as session:
        without = await session.scalar(
            select(func.count()).select_from(Score).where(Score.change_state.is_(None))
        )
    assert without == 0
    assert await rescore_all(runtime, settings, as_of=AS_OF) == 0
    assert await outbox_size(scoring_api) == published


async def test_a_rescore_in_many_chunks_stores_and_publishes_every_customer(
    scoring_api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Chunks of 7: each chunk is built while the previous one is written.
    monkeypatch.setattr(score_publishing, "_CHUNK", 7)
    await apply(scoring_api, a_base())
    await fit(scoring_api)
    runtime, settings = scoring_api.app.state.runtime, scoring_api.app.state.settings
    async with runtime.sessions() as session:
        scored = await session.scalar(select(func.count()).select_from(Score))
    assert scored == 60
    assert await outbox_size(scoring_api) == 60  # one score.updated per first score

    assert await rescore_all(runtime, settings, as_of=AS_OF) == 0
    assert await outbox_size(scoring_api) == 60
    later = await rescore_all(runtime, settings, as_of=AS_OF + timedelta(days=60))
    assert later > 7
    assert await outbox_size(scoring_api) >= 60 + later
