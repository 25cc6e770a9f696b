"""scoring-service settings, read from ``SCORING_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crm_shared import ServiceSettings, job_interval


class ScoringSettings(ServiceSettings):
    """Everything scoring-service can be configured with."""

    model_config = SettingsConfigDict(env_prefix="SCORING_")

    service_name: str = "scoring-service"
    database_url: str = "sqlite+aiosqlite:///./var/scoring-service.db"
    # `currency` (SCORING_CURRENCY), the accounting currency scores are kept in, is a shared
    # setting: every service refuses orders in any other (crm_contracts.check_order).
    churn_horizon_days: int = Field(default=90, ge=1, le=730)
    clv_months: int = Field(default=12, ge=1, le=60)
    monthly_discount_rate: float = Field(default=0.01, ge=0, lt=1)
    current_value_weight: float = Field(default=0.6, ge=0, le=1)
    score_change_tolerance: float = Field(
        default=0.01, ge=0, description="Smallest change in a probability worth publishing."
    )
    refit_interval_seconds: float = job_interval(86_400, "the models are refitted")
    first_fit_retry_seconds: float = Field(
        default=60,
        gt=0,
        description=(
            "Until a model with BG/NBD parameters exists, how soon a fit is tried again (while"
            " refits are on)."
        ),
    )
    first_fit_retry_max_seconds: float = Field(
        default=900,
        gt=0,
        description=(
            "The longest wait between those tries: after a fit on a base too small for BG/NBD"
            " the wait doubles up to this."
        ),
    )
    pending_rescore_interval_seconds: float = job_interval(
        0.25, "customers touched by new events are re-scored (also right after each consumed batch)"
    )
    rescore_batch_size: int = Field(default=5_000, ge=1, le=100_000)
    rescore_interval_seconds: float = job_interval(3_600, "the whole base is re-scored")
    summary_refresh_interval_seconds: float = job_interval(
        60,
        "the purchase summaries of customers whose orders changed are refreshed (PostgreSQL;"
        " a fit refreshes those left, so this only spreads the work between fits)",
    )
