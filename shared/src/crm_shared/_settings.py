"""The settings base every service extends with its own env prefix (e.g. ``PROFILE_``)."""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from crm_contracts import CurrencyCode, OrderPolicy
from crm_shared._kafka_security import KafkaSaslMechanism, KafkaSecurity, KafkaSecurityProtocol


class Scope(StrEnum):
    """API-key scopes; each includes the ones below it (admin > write > read)."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


class ApiKeyRecord(BaseModel):
    """A stored API key: its SHA-256 hex digest, never the key itself."""

    name: str = Field(min_length=1, max_length=100)
    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    scopes: list[Scope] = Field(min_length=1)


class ProcessSettings(BaseSettings):
    """Settings every CRM process has, the console included: its name, environment, log level.

    A subclass sets only its ``env_prefix``: pydantic merges its ``model_config`` with this one,
    so every process ignores unknown variables and validates its defaults.
    """

    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore", validate_default=True)

    service_name: str = "crm-service"
    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return upper


def job_interval(default: float, what: str) -> Any:
    """The ``Field`` of a scheduled job's interval in seconds: ``what`` it does that often, and
    0 turns the job off (crm_shared.ScheduledJob's rule)."""
    return Field(default=default, ge=0, description=f"How often {what}; 0 turns it off.")


class ServiceSettings(ProcessSettings):
    """Settings every service has; a service subclass sets its own ``env_prefix``."""

    database_url: str = "sqlite+aiosqlite:///./var/crm.db"
    database_pool_size: int = Field(default=10, ge=1, le=200)
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_consumer_batch_size: int = Field(default=500, ge=1, le=100_000)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000)
    kafka_rebalance_timeout_ms: int = Field(default=10_000, ge=1_000, le=300_000)
    # How long the broker may hold a fetch with nothing new: each hop of the chain can wait
    # this long (the embedded broker waits out most of it), idle consumers poll this often.
    kafka_fetch_max_wait_ms: int = Field(default=50, ge=1, le=10_000)
    # The same once a consumer has read nothing for a second: the embedded broker spends CPU
    # while it holds an empty fetch, so idle consumers polling every 50 ms cost it most of its
    # CPU at low rates. The first record after a quiet spell waits up to about half of it more.
    kafka_idle_fetch_max_wait_ms: int = Field(default=250, ge=1, le=10_000)
    # The largest record a service publishes (the producer's max_request_size): at most the
    # broker's message.max.bytes (1 MiB by default on Kafka) and the topics' max.message.bytes.
    kafka_max_message_bytes: int = Field(default=1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    kafka_enabled: bool = True
    api_keys: list[ApiKeyRecord] = Field(default_factory=list)
    # 256 KiB: any body of that size yields events well under the 1 MiB producer limit (see
    # the README's limits); profile-service's streamed import has its own, larger limit.
    max_request_body_bytes: int = Field(default=256 * 1024, ge=1024, le=64 * 1024 * 1024)
    outbox_poll_interval_seconds: float = Field(default=0.5, gt=0)
    # While the relay LISTENs for the outbox notices of committing transactions (PostgreSQL)
    # the poll is only a fallback: this often at most.
    outbox_listening_poll_interval_seconds: float = Field(default=5.0, gt=0)
    outbox_batch_size: int = Field(default=500, ge=1, le=10_000)
    # /readyz fails when the oldest unpublished outbox row is older than this (a stuck relay);
    # parked rows (ones the broker can never take) need an operator and do not count.
    outbox_stuck_after_seconds: float = Field(default=120.0, gt=0)
    # The edge policy for orders (crm_contracts.check_order): the same in every service
    # of a deployment, so that all of them accept and refuse the same orders.
    currency: CurrencyCode = Field(
        default="USD",
        description="The accounting currency: orders in any other are refused at every edge.",
    )
    max_clock_skew_seconds: int = Field(
        default=300,
        ge=0,
        le=86_400,
        description="How far past now an order's or a consent's time may lie (clocks run ahead).",
    )
    max_event_age_days: int = Field(
        default=14_610,
        ge=1,
        le=73_000,
        description="How old an order may be (40 years: replays of old order books pass).",
    )

    @property
    def order_policy(self) -> OrderPolicy:
        """The orders this deployment accepts: its currency and the window of order times."""
        return OrderPolicy(
            currency=self.currency,
            max_future_skew=timedelta(seconds=self.max_clock_skew_seconds),
            max_age=timedelta(days=self.max_event_age_days),
        )

    @model_validator(mode="after")
    def _production_needs_real_setup(self) -> ServiceSettings:
        # A production service with no keys would answer 401 to everyone, and SQLite is a
        # single-node development store: refuse both at start instead of failing later.
        if self.environment == "production":
            if not self.api_keys:
                raise ValueError("api_keys must be set in production")
            if self.database_url.startswith("sqlite"):
                raise ValueError("production needs PostgreSQL, not SQLite")
        return self

    # Kafka TLS and SASL, for a managed Kafka (MSK, Confluent Cloud, Aiven); checked together
    # and given to every Kafka client by crm_shared._kafka_security (its docstring: decisions).
    kafka_security_protocol: KafkaSecurityProtocol = KafkaSecurityProtocol.PLAINTEXT
    kafka_sasl_mechanism: KafkaSaslMechanism | None = None
    kafka_sasl_username: SecretStr | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_file: Path | None = None  # unset: the system's trusted CAs
    kafka_ssl_cert_file: Path | None = None  # a client certificate, for mutual TLS
    kafka_ssl_key_file: Path | None = None  # unset: the key is in kafka_ssl_cert_file
    kafka_ssl_key_password: SecretStr | None = None

    @field_validator(
        "kafka_sasl_mechanism",
        "kafka_sasl_username",
        "kafka_sasl_password",
        "kafka_ssl_ca_file",
        "kafka_ssl_cert_file",
        "kafka_ssl_key_file",
        "kafka_ssl_key_password",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # Compose and ConfigMaps hand an optional setting that is not in use over as "".
        return None if value == "" else value

    @property
    def kafka_security(self) -> KafkaSecurity:
        """How every Kafka client of the service connects."""
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_ca_file=self.kafka_ssl_ca_file,
            ssl_cert_file=self.kafka_ssl_cert_file,
            ssl_key_file=self.kafka_ssl_key_file,
            ssl_key_password=self.kafka_ssl_key_password,
        )

    @model_validator(mode="after")
    def _kafka_security_fits_together(self) -> ServiceSettings:
        self.kafka_security.check(production=self.environment == "production")
        return self
