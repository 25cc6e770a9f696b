"""Settings of notification-service: the two signing secrets, refused when weak in production."""

from __future__ import annotations

import base64
import os
import secrets
from typing import Any

import pytest
from pydantic import ValidationError

from crm_shared.testing import sample_key_records
from notification_service.app import delivery_config
from notification_service.domain.signing import webhook_key, webhook_secret
from notification_service.settings import NotificationSettings
from notification_service.workflows.rendering import TemplateRenderer

STRONG_UNSUBSCRIBE = secrets.token_urlsafe(32)
STRONG_WEBHOOK = webhook_secret(os.urandom(32))


def production(**overrides: Any) -> NotificationSettings:
    values: dict[str, Any] = {
        "environment": "production",
        "database_url": "postgresql+asyncpg://notification:pw@db/notification",
        "api_keys": sample_key_records(),
        "unsubscribe_secret": STRONG_UNSUBSCRIBE,
        "webhook_secret": STRONG_WEBHOOK,
        **overrides,
    }
    return NotificationSettings(**values)


def test_production_accepts_two_random_secrets() -> None:
    settings = production()

    assert settings.unsubscribe_secret_bytes() == STRONG_UNSUBSCRIBE.encode()
    assert len(settings.webhook_key()) == 32


def test_unsubscribe_links_and_webhooks_are_signed_with_different_keys() -> None:
    settings = NotificationSettings(environment="development")

    assert settings.unsubscribe_secret_bytes() != settings.webhook_key()


@pytest.mark.parametrize("environment", ["development", "production"])
@pytest.mark.parametrize("name", ["unsubscribe_secret", "webhook_secret"])
def test_an_empty_secret_is_a_clear_settings_error(environment: str, name: str) -> None:
    with pytest.raises(ValidationError) as raised:
        production(environment=environment, **{name: ""})

    assert f"NOTIFICATION_{name.upper()}" in str(raised.value)


@pytest.mark.parametrize(
    "weak",
    [
        pytest.param("x" * 31, id="short"),
        pytest.param("a" * 64, id="one-character"),
        pytest.param("passwordpasswordpasswordpassword", id="a-word-repeated"),
        pytest.param("01234567890123456789012345678901", id="digits"),
        pytest.param("dev-only-unsubscribe-secret-change-me", id="development-default"),
    ],
)
def test_production_refuses_a_weak_unsubscribe_secret(weak: str) -> None:
    with pytest.raises(ValidationError, match="NOTIFICATION_UNSUBSCRIBE_SECRET"):
        production(unsubscribe_secret=weak)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(os.urandom(31), id="short"),
        pytest.param(b"\x00" * 64, id="zeros"),
        pytest.param(b"dev-only-webhook-secret-change-me", id="development-default"),
    ],
)
def test_production_refuses_a_weak_webhook_key(key: bytes) -> None:
    with pytest.raises(ValidationError, match="NOTIFICATION_WEBHOOK_SECRET"):
        production(webhook_secret=webhook_secret(key))


def test_production_refuses_the_development_defaults() -> None:
    with pytest.raises(ValidationError, match="development"):
        production(unsubscribe_secret=NotificationSettings().unsubscribe_secret)


def test_a_webhook_secret_not_in_whsec_form_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="whsec_"):
        NotificationSettings(webhook_secret=secrets.token_urlsafe(32))


def test_production_refuses_one_secret_for_both() -> None:
    key = os.urandom(32)
    shared = webhook_secret(key)

    with pytest.raises(ValidationError, match="must differ"):
        production(unsubscribe_secret=shared, webhook_secret=shared)
    with pytest.raises(ValidationError, match="must differ"):
        production(unsubscribe_secret=key.hex(), webhook_secret=webhook_secret(key.hex().encode()))


def test_the_delivery_loop_signs_webhooks_with_the_decoded_webhook_key() -> None:
    settings = production()

    renderer = TemplateRenderer(settings.render_limits())
    config = delivery_config(settings, None, "s-1", renderer)  # type: ignore[arg-type]
    renderer.close()

    assert config.unsubscribe_secret == STRONG_UNSUBSCRIBE.encode()
    assert webhook_key(STRONG_WEBHOOK) == base64.b64decode(STRONG_WEBHOOK.removeprefix("whsec_"))
