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

import asyncpg
from sqlalchemy import Table, case, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import BulkUpdate, BulkWrite, among
from scoring_service.db.models import Score
from scoring_service.domain.score_changes import ScoreState

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
    "explanation_figures",
    "change_state",
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
    encoded=frozenset({"payload", "explanation"}),
)
_KEEP_STATES = BulkUpdate(_TABLE, ("customer_id",), ("change_state",))


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
        c.change_state,
        *(c[name] for name in SEGMENT_DIMENSIONS),
        # Only a row without a state is compared by its payload.
        case((c.change_state.is_(None), c.payload)),
    ).where(among(session, c.customer_id, list(ids)))
    found = {}
    for customer_id, packed, *segments, payload in await session.execute(query):
        found[customer_id] = StoredScore(
            None if packed is None else ScoreState.unpacked(bytes(packed)),
            dict(zip(SEGMENT_DIMENSIONS, segments, strict=True)),
            payload,
        )
    return found


async def write_scores(
    session: AsyncSession, rows: Sequence[tuple[Any, ...]], *, none_stored: bool = False
) -> None:
    """Upsert score rows (tuples in the order of `COLUMNS`; JSON columns as JSON text).

    `none_stored`: the caller found none of these customers scored in this transaction (a
    first fit); on PostgreSQL they are then COPYed straight into `scores`, unless a concurrent
    re-score stored one meanwhile (then upserted as any other chunk).
    """
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        if none_stored and await _copied_if_new(session, rows):
            return
        await _copy_upsert(session, rows)
    else:
        await _UPSERT.run(session, rows)


async def _copied_if_new(session: AsyncSession, rows: Sequence[tuple[Any, ...]]) -> bool:
    """COPY the rows into `scores` (half the work of the temporary table and its merge);
    False, with nothing written, when one of the customers has a score after all."""
    try:
        async with session.begin_nested():
            copy = (await _raw(session)).copy_records_to_table
            await copy("scores", records=rows, columns=list(COLUMNS))
    except asyncpg.UniqueViolationError:
        return False
    return True


async def _raw(session: AsyncSession) -> Any:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection


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
    await (await _raw(session)).copy_records_to_table(
        "scores_incoming", records=rows, columns=list(COLUMNS)
    )
    await session.execute(text(_MERGE))
    await session.execute(text("truncate scores_incoming"))


async def keep_states(session: AsyncSession, states: Sequence[tuple[str, ScoreState]]) -> None:
    """Store the change state of unchanged rows stored before states were kept (once each:
    their next re-score compares the state instead of decoding the payload)."""
    await _KEEP_STATES.run(session, [(cid, state.packed()) for cid, state in states])
