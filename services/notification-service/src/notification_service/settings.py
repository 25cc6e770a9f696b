"""notification-service settings, read from ``NOTIFICATION_*`` environment variables."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Final

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from crm_shared import ServiceSettings, job_interval
from notification_service.domain.delivery_policy import PolicySettings
from notification_service.domain.sandbox import RenderLimits
from notification_service.domain.signing import webhook_key, webhook_secret
from notification_service.secret_strength import weakness

# Development defaults, refused in production (their keys start with "dev-only").
DEVELOPMENT_UNSUBSCRIBE_SECRET: Final = "dev-only-unsubscribe-secret-change-me"
DEVELOPMENT_WEBHOOK_SECRET: Final = webhook_secret(b"dev-only-webhook-secret-change-me")


class NotificationSettings(ServiceSettings):
    """Everything notification-service can be configured with (rules and templates: the API)."""

    model_config = SettingsConfigDict(env_prefix="NOTIFICATION_")

    service_name: str = "notification-service"
    database_url: str = "sqlite+aiosqlite:///./var/notification-service.db"
    public_base_url: str = Field(
        default="http://127.0.0.1:8004",
        description="Where customers reach this service (unsubscribe links point here).",
    )
    unsubscribe_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_UNSUBSCRIBE_SECRET),
        description=(
            "Signs the unsubscribe links in messages; changing it breaks the links already"
            " sent. Production: random, at least 32 bytes (e.g. secrets.token_urlsafe(32))."
        ),
    )
    webhook_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_WEBHOOK_SECRET),
        description=(
            "Signs webhooks (Standard Webhooks); receivers verify with it. The form"
            " whsec_<base64 key>; production: a random key of at least 32 bytes."
        ),
    )
    # Email over SMTP.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_sender: str = "CRM <crm@example.com>"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_start_tls: bool = False
    # SMS through an HTTP gateway.
    sms_gateway_url: str | None = Field(default=None, description="Unset: SMS is unavailable.")
    sms_gateway_token: SecretStr | None = None
    sms_sender_id: str = "CRM"
    # Tasks for account managers (warnings about high-value customers).
    account_manager_webhook_url: str | None = None
    # profile-service, where unsubscribe links record the opt-out.
    profile_service_url: str = "http://127.0.0.1:8001"
    profile_service_api_key: SecretStr | None = None
    # Delivery.
    delivery_interval_seconds: float = job_interval(
        0.5, "due messages are sent (also right after each consumed batch)"
    )
    delivery_batch_size: int = Field(default=200, ge=1, le=10_000)
    parallel_sends: int = Field(
        default=20,
        ge=1,
        le=1_000,
        description=(
            "Messages handed to SMTP, the SMS gateway or webhooks at once; also the most"
            " emails a crash can leave unknown (reported failed, never sent twice)."
        ),
    )
    max_attempts: int = Field(default=5, ge=1, le=20)
    retry_base_seconds: float = Field(default=60.0, gt=0, description="First retry's ceiling.")
    retry_max_seconds: float = Field(default=1_800.0, gt=0)
    send_timeout_seconds: float = Field(default=10.0, gt=0)
    max_trigger_age_hours: float = Field(
        default=168.0,
        ge=0,
        description="A message due longer ago than this is not sent (replays); 0: no limit.",
    )
    # Template rendering (previews, saves and sends alike).
    render_workers: int = Field(
        default=2, ge=1, le=32, description="Threads rendering templates, off the event loop."
    )
    render_max_seconds: float = Field(
        default=2.0, gt=0, le=60, description="A render taking longer stops (422 or failed)."
    )
    render_max_steps: int = Field(
        default=200_000,
        ge=1_000,
        description="Loop iterations and calls one render may make.",
    )
    render_max_chars: int = Field(
        default=100_000,
        ge=1_000,
        description="The longest value (string or list) a render may make, its output included.",
    )
    # Policy.
    marketing_cap_count: int = Field(default=1, ge=1)
    marketing_cap_hours: float = Field(default=72.0, gt=0)
    sliding_cap_count: int = Field(default=1, ge=1)
    sliding_cap_days: float = Field(default=7.0, gt=0)
    max_deferral_hours: float = Field(default=72.0, ge=0)
    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(9, 0)

    @field_validator("unsubscribe_secret")
    @classmethod
    def _unsubscribe_secret_is_set(cls, secret: SecretStr) -> SecretStr:
        if not secret.get_secret_value():
            raise ValueError(
                "NOTIFICATION_UNSUBSCRIBE_SECRET is empty: set a random value"
                " (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return secret

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret_is_whsec(cls, secret: SecretStr) -> SecretStr:
        try:
            webhook_key(secret.get_secret_value())
        except ValueError as error:
            raise ValueError(
                f"NOTIFICATION_WEBHOOK_SECRET: {error} (make one with python3 -c 'import"
                ' base64, secrets; print("whsec_" + base64.b64encode(secrets.token_bytes(32))'
                ".decode())')"
            ) from error
        return secret

    @model_validator(mode="after")
    def _strong_secrets_in_production(self) -> NotificationSettings:
        if self.environment != "production":
            return self
        unsubscribe = self.unsubscribe_secret_bytes()
        webhook = self.webhook_key()
        for variable, key in (
            ("NOTIFICATION_UNSUBSCRIBE_SECRET", unsubscribe),
            ("NOTIFICATION_WEBHOOK_SECRET", webhook),
        ):
            if key.startswith(b"dev-only"):
                raise ValueError(f"{variable}: set it in production (this is the development one)")
            why = weakness(key)
            if why is not None:
                raise ValueError(f"{variable} is too weak for production: {why}")
        if unsubscribe in (webhook, self.webhook_secret.get_secret_value().encode()):
            # A webhook receiver holds the webhook secret; the same one would let it mint
            # unsubscribe tokens for any customer.
            raise ValueError(
                "NOTIFICATION_UNSUBSCRIBE_SECRET and NOTIFICATION_WEBHOOK_SECRET must differ"
            )
        return self

    def unsubscribe_secret_bytes(self) -> bytes:
        """The key of unsubscribe tokens."""
        return self.unsubscribe_secret.get_secret_value().encode()

    def webhook_key(self) -> bytes:
        """The HMAC key of webhook signatures (the decoded ``whsec_`` secret)."""
        return webhook_key(self.webhook_secret.get_secret_value())

    def render_limits(self) -> RenderLimits:
        """The budget of each template render."""
        return RenderLimits(
            max_steps=self.render_max_steps,
            max_seconds=self.render_max_seconds,
            max_chars=self.render_max_chars,
        )

    def policy(self) -> PolicySettings:
        """The delivery policy these settings describe."""
        return PolicySettings(
            marketing_cap_count=self.marketing_cap_count,
            marketing_cap_window=timedelta(hours=self.marketing_cap_hours),
            sliding_cap_count=self.sliding_cap_count,
            sliding_cap_window=timedelta(days=self.sliding_cap_days),
            max_deferral=timedelta(hours=self.max_deferral_hours),
            quiet_hours_start=self.quiet_hours_start,
            quiet_hours_end=self.quiet_hours_end,
            max_attempts=self.max_attempts,
            backoff_base=timedelta(seconds=self.retry_base_seconds),
            backoff_max=timedelta(seconds=max(self.retry_max_seconds, self.retry_base_seconds)),
            account_management_webhook_url=self.account_manager_webhook_url,
        )
