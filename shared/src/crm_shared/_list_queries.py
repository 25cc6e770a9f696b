"""The parts of a list query: equality filters and time windows that apply when given, and
the keyset orders of a list: by id, or newest first (by a time, then an id that breaks its
ties)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from crm_shared._periods import TimeWindow

SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])  # of any columns


def where_given(query: SelectT, *criteria: tuple[InstrumentedAttribute[Any], object]) -> SelectT:
    """`query` narrowed to the rows whose column equals each (column, value) criterion's
    value; a criterion whose value is None (not asked for) narrows nothing."""
    for column, value in criteria:
        if value is not None:
            query = query.where(column == value)
    return query


def within(query: SelectT, at: InstrumentedAttribute[datetime], window: TimeWindow) -> SelectT:
    """`query` narrowed to the rows whose `at` lies in `window` (an open side narrows nothing)."""
    if window.start is not None:
        query = query.where(at >= window.start)
    if window.end is not None:
        query = query.where(at < window.end)
    return query


def in_id_order(query: SelectT, key: InstrumentedAttribute[str], after: str | None) -> SelectT:
    """`query` ordered by `key`, from just after the `after` position (the id of the last item
    of the previous page) when there is one."""
    if after is not None:
        query = query.where(key > after)
    return query.order_by(key)


def newest_first(
    query: SelectT,
    at: InstrumentedAttribute[datetime],
    key: InstrumentedAttribute[str],
    after: tuple[datetime, str] | None,
) -> SelectT:
    """`query` ordered by `at`, then `key`, both descending, from just after the `after`
    position (the time and id of the last item of the previous page) when there is one."""
    if after is not None:
        after_at, after_key = after
        # Spelled out rather than as a row comparison: every backend reads it off the
        # (at, key) index.
        query = query.where((at < after_at) | ((at == after_at) & (key < after_key)))
    return query.order_by(at.desc(), key.desc())
