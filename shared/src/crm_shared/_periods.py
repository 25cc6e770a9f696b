"""Periods of whole days a query asks for: ``from`` and ``to``, both included (UTC dates)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Final

from crm_shared.errors import UnprocessableContent

# Far enough back for any shop's history, and far from date.min, where day arithmetic fails.
EARLIEST_DAY: Final = date(1970, 1, 1)


def day_period(
    from_: date | None, to: date | None, *, default_days: int, today: date
) -> tuple[date, date]:
    """The first and last day asked for: ``to`` defaults to `today`, ``from`` to the
    `default_days` days ending on ``to`` (not before EARLIEST_DAY). A period that ends before
    it starts is a 422 on ``from``."""
    last = to or today
    first = from_ or max(EARLIEST_DAY, last - timedelta(days=default_days - 1))
    if first > last:
        raise UnprocessableContent(f"from ({first}) is after to ({last})", field="from")
    return first, last
