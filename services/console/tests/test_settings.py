"""Console settings: production needs a real session secret and sends cookies over HTTPS only."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crm_console.settings import ConsoleSettings

SECRET = "s" * 32


def test_production_refuses_to_start_without_a_session_secret() -> None:
    with pytest.raises(ValidationError, match="session_secret must be set in production"):
        ConsoleSettings(environment="production")


def test_a_short_session_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 32 characters"):
        ConsoleSettings(session_secret="short")


def test_cookies_are_secure_everywhere_but_development() -> None:
    assert not ConsoleSettings().secure_cookies
    assert ConsoleSettings(environment="production", session_secret=SECRET).secure_cookies
    assert ConsoleSettings(environment="test").secure_cookies


def test_settings_come_from_console_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_LIFECYCLE_SERVICE_URL", "http://lifecycle:8000")
    monkeypatch.setenv("CONSOLE_SESSION_SECRET", SECRET)

    settings = ConsoleSettings()

    assert settings.lifecycle_service_url == "http://lifecycle:8000"
    assert settings.effective_session_secret() == SECRET


def test_without_a_secret_each_process_makes_its_own() -> None:
    settings = ConsoleSettings()
    assert settings.effective_session_secret() != settings.effective_session_secret()
