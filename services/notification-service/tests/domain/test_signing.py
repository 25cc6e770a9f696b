"""Signing: webhook signatures a receiver can check, unsubscribe tokens nobody can forge."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re

import pytest

from crm_contracts import NotificationChannel, Purpose
from notification_service.domain.signing import (
    UnsubscribeRequest,
    read_unsubscribe_token,
    sign_webhook,
    unsubscribe_token,
    webhook_key,
    webhook_secret,
)

SECRET = b"unsubscribe-test-secret"
SENT_AT = 1_741_944_600  # 2025-03-14T09:30:00Z
BODY = b'{"customer": "c-1", "action": "account_manager_task"}'
CUSTOMER = "01932c4e-5f1a-7c3b-8d2e-9f0a1b2c3d4e"


# --- webhooks -----------------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_of_id_dot_timestamp_dot_body() -> None:
    key = b"k" * 32
    digest = hmac.new(key, b"n-1.1741944600." + BODY, hashlib.sha256).digest()

    assert sign_webhook(key, "n-1", SENT_AT, BODY) == "v1," + base64.b64encode(digest).decode()


def test_webhook_secret_is_whsec_and_base64_of_the_key() -> None:
    key = bytes(range(32))

    secret = webhook_secret(key)

    assert secret == "whsec_" + base64.b64encode(key).decode()
    assert webhook_key(secret) == key


@pytest.mark.parametrize(
    "secret", ["", "whsec_", "dev-only-signing-secret", "whsec_not base64!", "WHSEC_AAAA"]
)
def test_a_webhook_secret_not_of_the_whsec_form_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match=r"whsec_|empty|base64"):
        webhook_key(secret)


# --- unsubscribe tokens -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "purpose"), list(itertools.product(NotificationChannel, Purpose))
)
def test_token_carries_customer_channel_and_purpose(
    channel: NotificationChannel, purpose: Purpose
) -> None:
    token = unsubscribe_token(SECRET, CUSTOMER, channel, purpose)

    assert read_unsubscribe_token(SECRET, token) == UnsubscribeRequest(CUSTOMER, channel, purpose)


def test_token_is_url_safe_versioned_and_short_enough_for_an_sms() -> None:
    token = unsubscribe_token(SECRET, CUSTOMER, NotificationChannel.SMS, Purpose.MARKETING)

    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)
    assert token.startswith("u1.")
    assert len(token) <= 80


@pytest.mark.parametrize("customer_id", ["shop-eu:8812", "a.b.c", "Zoë/ß?&=", "x" * 200])
def test_any_customer_id_round_trips(customer_id: str) -> None:
    token = unsubscribe_token(SECRET, customer_id, NotificationChannel.EMAIL, Purpose.SERVICE)

    request = read_unsubscribe_token(SECRET, token)

    assert request is not None
    assert request.customer_id == customer_id


def test_token_is_the_same_every_time() -> None:
    first = unsubscribe_token(SECRET, CUSTOMER, NotificationChannel.EMAIL, Purpose.MARKETING)
    second = unsubscribe_token(SECRET, CUSTOMER, NotificationChannel.EMAIL, Purpose.MARKETING)

    assert first == second


def _token() -> str:
    return unsubscribe_token(SECRET, CUSTOMER, NotificationChannel.EMAIL, Purpose.MARKETING)


def _replace_piece(token: str, index: int, value: str) -> str:
    pieces = token.split(".")
    pieces[index] = value
    return ".".join(pieces)


@pytest.mark.parametrize(
    "tampered",
    [
        pytest.param(lambda t: _replace_piece(t, 1, "b3RoZXItY3VzdG9tZXI"), id="other-customer"),
        pytest.param(lambda t: _replace_piece(t, 2, "sm"), id="other-channel"),
        pytest.param(lambda t: _replace_piece(t, 2, "es"), id="other-purpose"),
        pytest.param(lambda t: _replace_piece(t, 0, "u2"), id="unknown-version"),
        pytest.param(lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), id="other-mac"),
        pytest.param(lambda t: _replace_piece(t, 3, "\N{SNOWMAN}"), id="non-ascii-mac"),
        pytest.param(lambda t: t + ".extra", id="extra-piece"),
        pytest.param(lambda t: t.rsplit(".", 1)[0], id="no-mac"),
        pytest.param(lambda t: "", id="empty"),
    ],
)
def test_tampered_token_is_refused(tampered) -> None:
    assert read_unsubscribe_token(SECRET, tampered(_token())) is None


def test_token_made_with_another_secret_is_refused() -> None:
    assert read_unsubscribe_token(b"another-secret", _token()) is None


def test_webhook_signature_cannot_pass_as_a_token() -> None:
    signed = "u1.YQ.em"
    mac_of_other_use = hmac.new(SECRET, signed.encode(), hashlib.sha256).hexdigest()

    assert read_unsubscribe_token(SECRET, f"{signed}.{mac_of_other_use}") is None


def test_token_needs_a_customer() -> None:
    with pytest.raises(ValueError, match="customer id"):
        unsubscribe_token(SECRET, "", NotificationChannel.EMAIL, Purpose.MARKETING)
