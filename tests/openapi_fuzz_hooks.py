"""Schemathesis hooks for the OpenAPI fuzz run (named in schemathesis.toml).

They widen what a bounded run sends, never what it accepts: every value is still one the
OpenAPI allows, and every check still applies.
"""

from datetime import date, time

import schemathesis
from hypothesis import strategies as st

# The import's NDJSON body is text like its CSV; Schemathesis knows only text/* as text.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")

# Valid RFC 3339 times whose conversion to UTC leaves the years a datetime can hold (issue 11
# found them answering 500). Random times rarely pair such a date with such an offset, so one
# date-time in five is one of these.
OVERFLOWING_TIMES = ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00")


def _offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{rest:02d}"


def _date_time(day: date, moment: time, offset: str) -> str:
    return f"{day.isoformat()}T{moment.isoformat()}{offset}"


_ANY_DATE_TIME = st.builds(
    _date_time, st.dates(), st.times(), st.just("Z") | st.integers(-1439, 1439).map(_offset)
)
schemathesis.openapi.format(
    "date-time",
    st.sampled_from((True, False, False, False, False)).flatmap(
        lambda overflowing: st.sampled_from(OVERFLOWING_TIMES) if overflowing else _ANY_DATE_TIME
    ),
)
