"""Hot single-statement reads without the ORM session: the driver's rows, from the engine's pool.

A GET that reads once pays, through ``SessionDep`` and ``AsyncSession.execute``, for a
session, a transaction object, the ORM's execution machinery and SQLAlchemy's result rows:
about half of a customer 360's server CPU in the profile (bench/RESULTS.md). ``RawRead``
compiles its statement once per dialect and runs it, on PostgreSQL, straight on the asyncpg
connection checked out of the same pool (asyncpg keeps it prepared per connection), so a
read is one checkout, one round trip and asyncpg's records. On SQLite it runs on a
SQLAlchemy connection in a read-only transaction, which behaves as before.

The PostgreSQL path skips SQLAlchemy's result processing: the statement's columns must come
back from asyncpg as the caller wants them. Text, numbers, booleans and ``timestamptz``
(aware, in UTC) do; JSON documents should be selected ``CAST(... AS TEXT)``, so that neither
driver decodes them. Parameters go to the driver as given, without SQLAlchemy's bind
processing: pass plain text, numbers, booleans or aware datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from crm_shared._db import READ_ONLY


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positions: tuple[str, ...]
    constants: dict[str, Any]  # the values the statement itself binds (its literals)


@dataclass
class RawRead:
    """One SELECT, compiled once per dialect, run with the fewest layers in between."""

    statement: Select[Any]
    _compiled: dict[str, _Compiled] = field(default_factory=dict, repr=False)

    async def rows(self, engine: AsyncEngine, **params: Any) -> Sequence[Mapping[str, Any]]:
        """All rows of the statement with ``params`` bound, as mappings by column label."""
        if engine.dialect.name != "postgresql":
            async with engine.connect() as connection:
                reading = await connection.execution_options(**{READ_ONLY: True})
                result = await reading.execute(self.statement, params)
                rows: Sequence[Mapping[str, Any]] = result.mappings().all()
                await connection.rollback()  # it only read: nothing to keep
                return rows
        compiled = self._compiled_for(engine)
        values = {**compiled.constants, **params}
        arguments = [values[name] for name in compiled.positions]
        pooled = await engine.raw_connection()
        driver: Any = pooled.driver_connection  # an asyncpg.Connection
        try:
            # No transaction: each statement runs in its own snapshot, as the reads of
            # SessionDep on PostgreSQL do (autocommit), without BEGIN and COMMIT.
            records: Sequence[Mapping[str, Any]] = await driver.fetch(compiled.sql, *arguments)
        except BaseException:
            # Whatever failed (the statement, a cancellation half-way through the protocol,
            # a broken socket), the connection is not handed to the next request as it is:
            # the pool replaces it, which is cheaper than finding out whether it is usable.
            pooled.invalidate()
            raise
        finally:
            await greenlet_spawn(pooled.close)  # back into the pool
        return records

    def _compiled_for(self, engine: AsyncEngine) -> _Compiled:
        dialect = engine.dialect
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            constants = {
                name: value
                for name, value in compiled.params.items()
                if not compiled.binds[name].required
            }
            found = _Compiled(compiled.string, tuple(compiled.positiontup or ()), constants)
            self._compiled[dialect.name] = found
        return found
