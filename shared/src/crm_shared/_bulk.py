"""Many rows in one statement execution: on PostgreSQL each column goes as one array.

A consumer batch writes tens to hundreds of rows per table. Through SQLAlchemy's
``executemany`` each row is its own statement execution on the server (asyncpg pipelines
them, but PostgreSQL parses the binds, runs the executor and the index look-ups once per
row) and SQLAlchemy builds a parameter dictionary and runs bind processors per row. Here a
whole batch is one ``INSERT ... SELECT ... FROM unnest($1::type[], $2::type[], ...)`` with a
fixed text (prepared once per connection by asyncpg, whatever the batch size), sent through
``exec_driver_sql``: no statement compilation, no per-row bind processing, errors still
wrapped by SQLAlchemy (so the consumer's retry policy sees them as before).

Values go to the driver as given: plain text, numbers, booleans, dates, aware datetimes.
JSON columns are serialised here (or taken as JSON text already, see ``encoded``) and cast on
the server. On SQLite the same write is the SQLAlchemy ``executemany`` it replaces.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

from sqlalchemy import JSON, ColumnElement, Table, any_, bindparam, func, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared._db import upsert_into

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class BulkWrite:
    """An INSERT of many rows, with what happens to a row whose key is already stored.

    ``conflict``: the unique columns (none: a plain INSERT). On conflict the ``update``
    columns take the new row's values and the ``add`` columns (counters) add them; with
    neither the row is left alone. ``where`` guards the update in SQL that both databases
    read, naming the stored row by its table name and the new one as ``excluded``.
    ``encoded``: JSON columns whose values the caller already serialised to JSON text.
    ``skip_any_conflict``: a row that would violate any unique index is left out.
    """

    table: Table
    columns: tuple[str, ...]
    conflict: tuple[str, ...] = ()
    update: tuple[str, ...] = ()
    add: tuple[str, ...] = ()
    where: str | None = None
    encoded: frozenset[str] = field(default_factory=frozenset)
    skip_any_conflict: bool = False  # ON CONFLICT DO NOTHING, whichever unique index it is

    @cached_property
    def _json_columns(self) -> tuple[int, ...]:
        return tuple(i for i, name in enumerate(self.columns) if _is_json(self.table.c[name].type))

    @cached_property
    def postgres_sql(self) -> str:
        """The PostgreSQL statement: one array parameter per column."""
        arrays = []
        selected = []
        for i, name in enumerate(self.columns):
            column_type = self.table.c[name].type
            if i in self._json_columns:
                arrays.append(f"${i + 1}::text[]")
                selected.append(f"v.{_q(name)}::{column_type.compile(dialect=_PG)}")
            else:
                arrays.append(f"${i + 1}::{column_type.compile(dialect=_PG)}[]")
                selected.append(f"v.{_q(name)}")
        names = ", ".join(_q(name) for name in self.columns)
        sql = (
            f"INSERT INTO {_q(self.table.name)} ({names}) SELECT {', '.join(selected)} "
            f"FROM unnest({', '.join(arrays)}) AS v({names})"
        )
        return sql + self._on_conflict()

    def _on_conflict(self) -> str:
        if self.skip_any_conflict:
            return " ON CONFLICT DO NOTHING"
        if not self.conflict:
            return ""
        target = ", ".join(_q(name) for name in self.conflict)
        sets = [f"{_q(name)} = excluded.{_q(name)}" for name in self.update]
        table = _q(self.table.name)
        sets += [f"{_q(name)} = {table}.{_q(name)} + excluded.{_q(name)}" for name in self.add]
        if not sets:
            return f" ON CONFLICT ({target}) DO NOTHING"
        guard = f" WHERE {self.where}" if self.where else ""
        return f" ON CONFLICT ({target}) DO UPDATE SET {', '.join(sets)}{guard}"

    async def run(self, session: AsyncSession, rows: Sequence[Sequence[Any]]) -> None:
        """Write ``rows`` (tuples in the order of ``columns``) in the session's transaction.

        PostgreSQL's ``ON CONFLICT DO UPDATE`` refuses a key twice in one statement: the
        caller gives each key once.
        """
        if not rows:
            return
        if session.get_bind().dialect.name == "postgresql":
            connection = await session.connection()
            await connection.exec_driver_sql(self.postgres_sql, self._arrays(rows))
            return
        await self._run_sqlalchemy(session, rows)

    def _arrays(self, rows: Sequence[Sequence[Any]]) -> tuple[list[Any], ...]:
        arrays = tuple(list(column) for column in zip(*rows, strict=True))
        for i in self._json_columns:
            if self.columns[i] not in self.encoded:
                arrays[i][:] = [None if v is None else _dumps(v) for v in arrays[i]]
        return arrays

    async def _run_sqlalchemy(self, session: AsyncSession, rows: Sequence[Sequence[Any]]) -> None:
        decoded = [self.columns.index(name) for name in self.encoded]
        dicts = []
        for row in rows:
            values = dict(zip(self.columns, row, strict=True))
            for i in decoded:
                name = self.columns[i]
                if values[name] is not None:
                    values[name] = json.loads(values[name])
            dicts.append(values)
        statement = upsert_into(session, self.table)
        if self.skip_any_conflict:
            statement = statement.on_conflict_do_nothing()
        elif self.conflict:
            table = self.table
            sets: dict[str, Any] = {name: statement.excluded[name] for name in self.update}
            sets |= {name: table.c[name] + statement.excluded[name] for name in self.add}
            target = [table.c[name] for name in self.conflict]
            if sets:
                statement = statement.on_conflict_do_update(
                    index_elements=target,
                    set_=sets,
                    where=text(self.where) if self.where else None,
                )
            else:
                statement = statement.on_conflict_do_nothing(index_elements=target)
        await session.execute(statement, dicts)


@dataclass(frozen=True)
class BulkUpdate:
    """An UPDATE of many rows by key, each row to its own values.

    PostgreSQL: ``UPDATE ... FROM unnest(...)``, one execution for the batch; elsewhere an
    ``executemany`` of the same UPDATE per row.
    """

    table: Table
    keys: tuple[str, ...]
    columns: tuple[str, ...]

    @cached_property
    def postgres_sql(self) -> str:
        """The PostgreSQL statement: one array parameter per key and column."""
        names = (*self.keys, *self.columns)
        arrays = ", ".join(
            f"${i + 1}::{self.table.c[name].type.compile(dialect=_PG)}[]"
            for i, name in enumerate(names)
        )
        table = _q(self.table.name)
        sets = ", ".join(f"{_q(name)} = v.{_q(name)}" for name in self.columns)
        match = " AND ".join(f"{table}.{_q(name)} = v.{_q(name)}" for name in self.keys)
        columns = ", ".join(_q(name) for name in names)
        return f"UPDATE {table} SET {sets} FROM unnest({arrays}) AS v({columns}) WHERE {match}"

    async def run(self, session: AsyncSession, rows: Sequence[Sequence[Any]]) -> None:
        """Update by ``rows``: tuples of the keys' values, then the columns' new values."""
        if not rows:
            return
        if session.get_bind().dialect.name == "postgresql":
            connection = await session.connection()
            arrays = tuple(list(column) for column in zip(*rows, strict=True))
            await connection.exec_driver_sql(self.postgres_sql, arrays)
            return
        names = (*self.keys, *self.columns)
        table = self.table
        statement = (
            update(table)
            .where(*(table.c[name] == bindparam(f"k_{name}") for name in self.keys))
            .values({name: bindparam(f"k_{name}") for name in self.columns})
        )
        await session.execute(
            statement, [{f"k_{n}": v for n, v in zip(names, row, strict=True)} for row in rows]
        )


def _is_json(column_type: Any) -> bool:
    return isinstance(column_type, JSON) or isinstance(
        column_type.dialect_impl(_PG), postgresql.JSON | postgresql.JSONB
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _q(name: str) -> str:
    return _PG.identifier_preparer.quote(name)


def among(session: AsyncSession, column: Any, values: Collection[Any]) -> ColumnElement[bool]:
    """``column IN values`` whose text does not depend on how many values there are.

    On PostgreSQL ``column = ANY($1)`` with the values as one array: an ``IN (...)`` list
    renders one statement per list length, each prepared anew by the driver (a round trip
    and a parse and plan on the server) once the connection's statement cache has seen more
    lengths than it keeps.
    """
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        return cast("ColumnElement[bool]", column == any_(array))
    return cast("ColumnElement[bool]", column.in_(list(values)))


def among_hashed(
    session: AsyncSession, column: Any, values: Collection[Any]
) -> ColumnElement[bool]:
    """`among`, as a semi-join on PostgreSQL: ``column IN (SELECT unnest($1))``.

    For a table that may hold from a few hundred to a few thousand rows. Prepared once, a
    statement runs on a generic plan, which guesses ten values in ``= ANY($1)``: on such a
    table it picks a sequential scan, then compares every row with every value of the array
    (a batch's hundreds of ids: ten milliseconds a statement). The semi-join hashes the
    values, or probes an index on a large table: linear either way.
    """
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam(None, list(values), type_=postgresql.ARRAY(column.type))
        return cast("ColumnElement[bool]", column.in_(select(func.unnest(array))))
    return cast("ColumnElement[bool]", column.in_(list(values)))
