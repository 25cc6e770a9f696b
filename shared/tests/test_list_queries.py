"""List queries on both databases: equality filters and time windows when given, by id or
newest first page after page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from crm_shared import (
    ServiceTables,
    TimeWindow,
    create_engine,
    in_id_order,
    newest_first,
    where_given,
    within,
)


class _Base(ServiceTables, DeclarativeBase):
    pass


class _Entry(_Base):
    __tablename__ = "entries"

    entry_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(20))


_T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
# Ties on the time: the id decides, so no entry is skipped or repeated at a page's edge.
_ENTRIES = [("a", 0), ("b", 1), ("c", 1), ("d", 1), ("e", 2), ("f", 3)]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=1)
    async with engine.begin() as connection:
        await connection.run_sync(_Base.metadata.create_all)
        await connection.execute(
            _Entry.__table__.insert(),
            [
                {
                    "entry_id": i,
                    "at": _T0 + timedelta(minutes=m),
                    "kind": "odd" if m % 2 else "even",
                }
                for i, m in _ENTRIES
            ],
        )
    yield engine
    await engine.dispose()


async def test_pages_walk_the_list_newest_first_without_gaps(engine: AsyncEngine) -> None:
    seen: list[str] = []
    after: tuple[datetime, str] | None = None
    async with engine.connect() as connection:
        while True:
            query = newest_first(select(_Entry), _Entry.at, _Entry.entry_id, after).limit(2)
            page = (await connection.execute(query)).all()
            if not page:
                break
            seen += [row.entry_id for row in page]
            after = (page[-1].at, page[-1].entry_id)
    assert seen == ["f", "e", "d", "c", "b", "a"]


async def test_only_the_criteria_given_narrow_the_rows(engine: AsyncEngine) -> None:
    async def ids(kind: str | None, entry_id: str | None) -> list[str]:
        query = where_given(select(_Entry), (_Entry.kind, kind), (_Entry.entry_id, entry_id))
        async with engine.connect() as connection:
            return sorted(row.entry_id for row in await connection.execute(query))

    assert await ids(None, None) == ["a", "b", "c", "d", "e", "f"]
    assert await ids("odd", None) == ["b", "c", "d", "f"]
    assert await ids("odd", "c") == ["c"]
    assert await ids("even", "c") == []


async def test_pages_walk_the_list_in_id_order_without_gaps(engine: AsyncEngine) -> None:
    seen: list[str] = []
    after: str | None = None
    async with engine.connect() as connection:
        while True:
            query = in_id_order(select(_Entry), _Entry.entry_id, after).limit(4)
            page = [row.entry_id for row in await connection.execute(query)]
            if not page:
                break
            seen += page
            after = page[-1]
    assert seen == ["a", "b", "c", "d", "e", "f"]


async def test_a_window_keeps_its_start_and_leaves_out_its_end(engine: AsyncEngine) -> None:
    async def ids(start: int | None, end: int | None) -> list[str]:
        window = TimeWindow(
            None if start is None else _T0 + timedelta(minutes=start),
            None if end is None else _T0 + timedelta(minutes=end),
        )
        async with engine.connect() as connection:
            rows = await connection.execute(within(select(_Entry), _Entry.at, window))
            return sorted(row.entry_id for row in rows)

    assert await ids(None, None) == ["a", "b", "c", "d", "e", "f"]
    assert await ids(1, 3) == ["b", "c", "d", "e"]
    assert await ids(2, None) == ["e", "f"]
    assert await ids(None, 1) == ["a"]
    assert await ids(2, 2) == []
