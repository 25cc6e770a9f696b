"""`is_one_of`: the bulk lookup every consumer uses, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, insert, select

from crm_shared import create_engine, create_session_factory, is_one_of

METADATA = MetaData()
IDS = Table("ids", METADATA, Column("id", String(8), primary_key=True))


async def test_only_exact_values_match_whatever_their_length(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(METADATA.create_all)
            await connection.execute(insert(IDS), [{"id": "abcdefgh"}, {"id": "x"}])
        sessions = create_session_factory(engine)

        async def matching(values: list[str]) -> list[str]:
            async with sessions() as session:
                query = select(IDS.c.id).where(is_one_of(session, IDS.c.id, values))
                return sorted(await session.scalars(query))

        assert await matching(["abcdefgh", "x", "y"]) == ["abcdefgh", "x"]
        # Longer than the column: never cut down to a stored value.
        assert await matching(["abcdefghXYZ"]) == []
        assert await matching([]) == []
    finally:
        await engine.dispose()
