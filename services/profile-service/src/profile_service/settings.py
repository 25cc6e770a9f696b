"""profile-service settings, read from ``PROFILE_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_shared import ServiceSettings


class ProfileSettings(ServiceSettings):
    """Everything profile-service can be configured with."""

    model_config = SettingsConfigDict(env_prefix="PROFILE_")

    service_name: str = "profile-service"
    database_url: str = "sqlite+aiosqlite:///./var/profile-service.db"
    default_phone_region: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="Region for phone numbers written without a country code, e.g. US or DE.",
    )
    import_batch_size: int = Field(default=1000, ge=1, le=50_000)
    # The import is parsed and stored in batches as it streams in, so it may be far larger
    # than any other body (PROFILE_IMPORT_MAX_BODY_BYTES; 32 MiB holds ~400k typical rows).
    import_max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    recent_notifications_in_360: int = Field(default=20, ge=0, le=500)
    # Finished 360 bodies kept per process (PostgreSQL only), each forgotten when a change to
    # the tables it is read from touches its customer (see crm_shared.ReadCache). The seconds
    # bound how long a body can outlive a change notice that never arrived; 0: cache off.
    customer_360_cache_seconds: float = Field(default=30.0, ge=0, le=300)
    customer_360_cache_entries: int = Field(default=10_000, ge=0, le=1_000_000)
