"""The `scores` rows a re-score reads (to compare) and writes.

A pending re-score writes the few hundred customers of a consumer batch: one array upsert
(`crm_shared.BulkWrite`). A full re-score writes up to a million: COPY into a temporary table
merged by one upsert, which pays only for large chunks (the temporary table is created and
dropped in the catalog by every transaction that uses it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, case, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import BulkWrite, among
from scoring_service.db.models import Score
from scoring_service.domain.score_changes import ScoreState, figures_of

# Written columns, in the order of a row tuple.
COLUMNS = (
    "customer_id",
    "as_of",
    "model_version",
    "rfm_segment",
    "value_tier",
    "grade",
    "cluster",
    "churn_risk",
    "total_spend",
    "total_spend_currency",
    "payload",
    "explanation",
    "change_digest",
    "change_figures",
)
SEGMENT_DIMENSIONS = ("rfm_segment", "value_tier", "grade", "cluster")
# From this many rows a chunk goes by COPY through a temporary table; below, one array upsert.
COPY_FROM_ROWS = 2_000

_TABLE = cast(Table, Score.__table__)
_UPSERT = BulkWrite(
    _TABLE,
    COLUMNS,
    conflict=("customer_id",),
    update=COLUMNS[1:],
    encoded=frozenset({"payload", "explanation", "change_figures"}),
)


@dataclass(frozen=True)
class StoredScore:
    """What a re-score needs of a stored score: its change state (None on a row stored before
    states were kept, whose `payload` is then given), and its segments."""

    state: ScoreState | None
    segments: dict[str, str | None]
    payload: dict[str, Any] | None


async def stored_scores(session: AsyncSession, ids: Sequence[str]) -> dict[str, StoredScore]:
    """The stored scores of `ids` (those that have one), without decoding their payloads."""
    c = _TABLE.c
    query = select(
        c.customer_id,
        c.change_digest,
        c.change_figures,
        *(c[name] for name in SEGMENT_DIMENSIONS),
        # Only a row without a state is compared by its payload.
        case((c.change_digest.is_(None), c.payload)),
    ).where(among(session, c.customer_id, list(ids)))
    found = {}
    for customer_id, digest, figures, *segments, payload in await session.execute(query):
        stored_figures = figures_of(figures)
        state = (
            ScoreState(bytes(digest), stored_figures)
            if digest is not None and stored_figures is not None
            else None
        )
        found[customer_id] = StoredScore(
            state, dict(zip(SEGMENT_DIMENSIONS, segments, strict=True)), payload
        )
    return found


async def write_scores(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
    """Upsert score rows (tuples in the order of `COLUMNS`; JSON columns as JSON text)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        await _copy_upsert(session, rows)
    else:
        await _UPSERT.run(session, rows)


_MERGE = (
    f"insert into scores ({', '.join(COLUMNS)}) select {', '.join(COLUMNS)} from scores_incoming "
    f"on conflict (customer_id) do update set "
    + ", ".join(f"{name} = excluded.{name}" for name in COLUMNS[1:])
)


async def _copy_upsert(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> None:
    """PostgreSQL: COPY the rows into a temporary table, then one INSERT ... ON CONFLICT."""
    await session.execute(
        text(
            "create temporary table if not exists scores_incoming "
            "(like scores including defaults) on commit drop"
        )
    )
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "scores_incoming", records=rows, columns=list(COLUMNS)
    )
    await session.execute(text(_MERGE))
    await session.execute(text("truncate scores_incoming"))


async def keep_states(session: AsyncSession, states: Sequence[tuple[str, ScoreState]]) -> None:
    """Store the change state of unchanged rows stored before states were kept (once each:
    their next re-score compares the state instead of decoding the payload)."""
    if not states:
        return
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        await connection.exec_driver_sql(
            _KEEP_STATES_SQL,
            (
                [customer_id for customer_id, _ in states],
                [state.digest for _, state in states],
                [orjson.dumps(state.figures).decode() for _, state in states],
            ),
        )
        return
    await session.execute(
        update(_TABLE)
        .where(_TABLE.c.customer_id == bindparam("kept_id"))
        .values(change_digest=bindparam("digest"), change_figures=bindparam("figures")),
        [
            {"kept_id": customer_id, "digest": state.digest, "figures": list(state.figures)}
            for customer_id, state in states
        ],
    )


_KEEP_STATES_SQL = (
    "UPDATE scores SET change_digest = v.digest, change_figures = v.figures::json"
    " FROM unnest($1::varchar[], $2::bytea[], $3::text[]) AS v(customer_id, digest, figures)"
    " WHERE scores.customer_id = v.customer_id"
)
