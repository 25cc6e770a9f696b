"""day_period and time_window: the days or times a query asks for, with the defaults and the
one refusal."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from crm_shared import EARLIEST_DAY, DayPeriod, TimeWindow, day_period, time_window
from crm_shared.errors import UnprocessableContent

_TODAY = date(2026, 11, 20)


def test_defaults_end_today_and_span_the_default_days() -> None:
    assert day_period(None, None, default_days=30, today=_TODAY) == (date(2026, 10, 22), _TODAY)
    assert day_period(None, date(2026, 1, 1), default_days=1, today=_TODAY) == (
        date(2026, 1, 1),
        date(2026, 1, 1),
    )


def test_the_days_given_are_kept() -> None:
    period = day_period(date(2025, 1, 1), date(2025, 3, 31), default_days=30, today=_TODAY)
    assert period == (date(2025, 1, 1), date(2025, 3, 31))


def test_a_default_start_never_lies_before_the_earliest_day() -> None:
    assert day_period(None, date(1970, 1, 5), default_days=30, today=_TODAY)[0] == EARLIEST_DAY


def test_a_period_that_ends_before_it_starts_is_refused_on_from() -> None:
    with pytest.raises(UnprocessableContent, match=r"from \(2026-01-02\) is after to") as error:
        day_period(date(2026, 1, 2), date(2026, 1, 1), default_days=30, today=_TODAY)
    assert [e["field"] for e in error.value.extensions["errors"]] == ["from"]


def test_a_period_spans_its_days_from_the_first_midnight_to_the_one_after_the_last() -> None:
    period = day_period(date(2025, 12, 30), date(2025, 12, 31), default_days=30, today=_TODAY)
    assert period == DayPeriod(first=date(2025, 12, 30), last=date(2025, 12, 31))
    assert period.start == datetime(2025, 12, 30, tzinfo=UTC)
    assert period.end == datetime(2026, 1, 1, tzinfo=UTC)


_NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_a_window_keeps_what_was_given_and_leaves_the_rest_open() -> None:
    names = {"start_name": "raised_from", "end_name": "raised_to"}
    assert time_window(None, None, **names) == TimeWindow()
    assert time_window(_NOON, None, **names) == TimeWindow(start=_NOON)
    assert time_window(_NOON, _NOON, **names) == TimeWindow(_NOON, _NOON)


def test_a_window_that_ends_before_it_starts_is_refused_on_its_start() -> None:
    earlier = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    with pytest.raises(UnprocessableContent, match="created_from is after created_to") as error:
        time_window(_NOON, earlier, start_name="created_from", end_name="created_to")
    assert [e["field"] for e in error.value.extensions["errors"]] == ["created_from"]
