"""day_period: the days a query asks for, with its defaults and the one refusal."""

from __future__ import annotations

from datetime import date

import pytest

from crm_shared import EARLIEST_DAY, day_period
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
