"""Console settings, read from ``CONSOLE_*`` environment variables."""

from __future__ import annotations

import secrets

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from crm_shared import ProcessSettings

# The console owns no database and consumes no events, so it extends crm_shared's
# ProcessSettings (name, environment, log level), not ServiceSettings (database, Kafka).


class ConsoleSettings(ProcessSettings):
    """Where the four services answer, and how the console keeps a session."""

    model_config = SettingsConfigDict(env_prefix="CONSOLE_")

    service_name: str = "console"
    profile_service_url: str = "http://127.0.0.1:8001"
    scoring_service_url: str = "http://127.0.0.1:8002"
    lifecycle_service_url: str = "http://127.0.0.1:8003"
    notification_service_url: str = "http://127.0.0.1:8004"
    service_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # Encrypts the session cookie (which holds the operator's API key). Unset in development:
    # a random one per process, so sessions end with the process.
    session_secret: SecretStr | None = Field(
        default=None,
        description="At least 32 characters; production needs it (e.g. secrets.token_urlsafe(32)).",
    )
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 86_400)
    export_max_rows: int = Field(
        default=1_000_000, ge=1, le=10_000_000, description="Rows one CSV export may stream."
    )

    @field_validator("session_secret", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _secret_fits_the_environment(self) -> ConsoleSettings:
        if self.session_secret is None:
            if self.environment == "production":
                raise ValueError("session_secret must be set in production")
        elif len(self.session_secret.get_secret_value()) < 32:
            raise ValueError("session_secret must be at least 32 characters")
        return self

    @property
    def secure_cookies(self) -> bool:
        """Cookies only over HTTPS, except in development (plain http://127.0.0.1)."""
        return self.environment != "development"

    def effective_session_secret(self) -> str:
        """The configured secret, or a random one for this process (development and tests)."""
        if self.session_secret is not None:
            return self.session_secret.get_secret_value()
        return secrets.token_urlsafe(32)
