"""scoring-service settings: the first-fit retry and its back-off."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from scoring_service.settings import ScoringSettings


def test_the_first_fit_retries_every_minute_backing_off_to_a_quarter_hour() -> None:
    settings = ScoringSettings()
    assert settings.first_fit_retry_seconds == 60
    assert settings.first_fit_retry_max_seconds == 900


def test_the_first_fit_retry_is_read_from_the_environment_and_must_be_positive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCORING_FIRST_FIT_RETRY_SECONDS", "5")
    monkeypatch.setenv("SCORING_FIRST_FIT_RETRY_MAX_SECONDS", "120")
    settings = ScoringSettings()
    assert (settings.first_fit_retry_seconds, settings.first_fit_retry_max_seconds) == (5, 120)
    with pytest.raises(ValidationError, match="first_fit_retry_seconds"):
        ScoringSettings(first_fit_retry_seconds=0)
