"""Events the caller serialised are staged alike by the array insert (a consumer batch) and by
COPY (from `_COPY_FROM_ROWS` rows on PostgreSQL), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared import _outbox as outbox_module
from crm_shared import (
    add_encoded_to_outbox,
    create_engine,
    create_session_factory,
    new_metadata,
    plumbing_tables,
)
from crm_shared._outbox import OUTBOX_ADDED

METADATA = new_metadata()
TABLES = plumbing_tables(METADATA)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as connection:
        await connection.run_sync(METADATA.create_all)
    yield engine
    await engine.dispose()


def rows(prefix: str, count: int) -> list[tuple[str, str, str, str]]:
    return [
        (f"{prefix}-{n:05d}", "crm.scores", f"c-{n % 7}", f'{{"n":{n},"text":"é, \\"q\\""}}')
        for n in range(count)
    ]


async def test_few_and_many_rows_are_staged_the_same(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    many = outbox_module._COPY_FROM_ROWS
    for prefix, count in (("few", 3), ("many", many)):
        async with sessions() as session, session.begin():
            await add_encoded_to_outbox(session, TABLES, rows(prefix, count))
            assert session.info[OUTBOX_ADDED]
    outbox = TABLES.outbox.c
    async with sessions() as session:
        stored = (
            await session.execute(
                select(outbox.event_id, outbox.topic, outbox.message_key, outbox.payload)
            )
        ).all()
    assert len(stored) == 3 + many
    found = {row[0]: tuple(row) for row in stored}
    assert [found[r[0]] for r in rows("few", 3)] == rows("few", 3)
    assert [found[r[0]] for r in rows("many", many)] == rows("many", many)
