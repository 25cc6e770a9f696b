"""What a query asks for in time: periods of whole days (``from`` and ``to``, both included,
UTC dates) and windows of times (from a start, included, to an end, excluded)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final, NamedTuple

from crm_shared.errors import UnprocessableContent

# Far enough back for any shop's history, and far from date.min, where day arithmetic fails.
EARLIEST_DAY: Final = date(1970, 1, 1)


class DayPeriod(NamedTuple):
    """Days from ``first`` to ``last``, both included (UTC dates)."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        """The first moment of the period: midnight (UTC) at the start of ``first``."""
        return datetime.combine(self.first, time.min, UTC)

    @property
    def end(self) -> datetime:
        """The first moment after the period: midnight (UTC) at the end of ``last``."""
        return datetime.combine(self.last + timedelta(days=1), time.min, UTC)


def day_period(from_: date | None, to: date | None, *, default_days: int, today: date) -> DayPeriod:
    """The first and last day asked for: ``to`` defaults to `today`, ``from`` to the
    `default_days` days ending on ``to`` (not before EARLIEST_DAY). A period that ends before
    it starts is a 422 on ``from``."""
    last = to or today
    first = from_ or max(EARLIEST_DAY, last - timedelta(days=default_days - 1))
    if first > last:
        raise UnprocessableContent(f"from ({first}) is after to ({last})", field="from")
    return DayPeriod(first, last)


@dataclass(frozen=True)
class TimeWindow:
    """Times from ``start`` (included) to ``end`` (excluded); None leaves that side open."""

    start: datetime | None = None
    end: datetime | None = None


def time_window(
    start: datetime | None, end: datetime | None, *, start_name: str, end_name: str
) -> TimeWindow:
    """The window a client asked for with the parameters `start_name` and `end_name`; one
    that ends before it starts is a 422 on `start_name`."""
    if start and end and start > end:
        raise UnprocessableContent(f"{start_name} is after {end_name}", field=start_name)
    return TimeWindow(start, end)
