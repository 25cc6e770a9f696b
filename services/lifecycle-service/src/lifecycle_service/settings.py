"""lifecycle-service settings, read from ``LIFECYCLE_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_shared import ServiceSettings, job_interval


class LifecycleSettings(ServiceSettings):
    """Everything lifecycle-service can be configured with (stage rules live in the database)."""

    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_")

    service_name: str = "lifecycle-service"
    database_url: str = "sqlite+aiosqlite:///./var/lifecycle-service.db"
    sweep_interval_seconds: float = job_interval(3_600, "the aging sweep moves silent customers on")
    sweep_chunk_size: int = Field(
        default=5_000,
        ge=1,
        le=100_000,
        description="Customers reviewed per sweep transaction.",
    )
