"""The settings base: what a service subclass inherits, and the field of a job's interval."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from crm_shared import ServiceSettings, job_interval


class _ExampleSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_")

    service_name: str = "example-service"
    tidy_interval_seconds: float = job_interval(60, "old rows are tidied")


def test_a_subclass_that_sets_only_its_prefix_keeps_the_shared_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXAMPLE_TIDY_INTERVAL_SECONDS", "5")
    monkeypatch.setenv("EXAMPLE_NOT_A_SETTING", "ignored")  # extra="ignore" is inherited
    assert _ExampleSettings().tidy_interval_seconds == 5
    assert _ExampleSettings.model_config["validate_default"] is True


def test_a_job_interval_is_zero_or_more_and_says_zero_turns_it_off() -> None:
    field = _ExampleSettings.model_fields["tidy_interval_seconds"]
    assert field.description == "How often old rows are tidied; 0 turns it off."
    assert _ExampleSettings(tidy_interval_seconds=0).tidy_interval_seconds == 0
    with pytest.raises(ValidationError):
        _ExampleSettings(tidy_interval_seconds=-1)


def test_the_relays_fallback_poll_while_listening_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _ExampleSettings().outbox_listening_poll_interval_seconds == 5.0
    monkeypatch.setenv("EXAMPLE_OUTBOX_LISTENING_POLL_INTERVAL_SECONDS", "30")
    assert _ExampleSettings().outbox_listening_poll_interval_seconds == 30
    with pytest.raises(ValidationError):
        _ExampleSettings(outbox_listening_poll_interval_seconds=0)
