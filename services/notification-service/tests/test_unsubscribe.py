"""Unsubscribe links: the opt-out holds here at once and is recorded by the real profile-service."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from notification_servers import SmtpSink, serving
from sqlalchemy import select

from crm_contracts import CustomerCreated, CustomerSnapshot, NotificationChannel, Purpose
from crm_shared import Scope
from crm_shared.testing import TEST_KEYS, ApiClient
from notification_service.db.models import Notification
from notification_service.domain.signing import unsubscribe_token
from notification_service.settings import NotificationSettings
from notification_service.workflows.opt_outs import forward_opt_outs
from notification_testing import (
    app_settings,
    churn_warning,
    deliver,
    event,
    feed,
    hold_nobody_back,
    running_api,
)
from profile_testing import app_settings as profile_settings
from profile_testing import running_api as running_profile

MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


async def test_following_the_link_stops_marketing_and_records_the_opt_out_with_profile_service(
    tmp_path: Path, mail: SmtpSink
):
    profile_db = f"sqlite+aiosqlite:///{tmp_path / 'profile.db'}"
    async with running_profile(profile_settings(profile_db)) as profile:
        created = await profile.post(
            "/v1/customers",
            json={"email": "ada@example.com", "first_name": "Ada", "time_zone": "Europe/Berlin"},
        )
        customer_id = created.json()["id"]
        granted = await profile.put(
            f"/v1/customers/{customer_id}/consents/email/marketing",
            json={"granted": True, "source": "signup"},
        )
        assert granted.status_code == 200, granted.text
        snapshot = CustomerSnapshot(
            customer_id=customer_id,
            email="ada@example.com",
            first_name="Ada",
            time_zone="Europe/Berlin",
            consents=[granted.json()],
            created_at=MORNING - timedelta(days=90),
            updated_at=MORNING - timedelta(days=90),
        )
        async with serving(profile.app) as profile_url:
            settings = app_settings(
                f"sqlite+aiosqlite:///{tmp_path / 'notification.db'}",
                smtp_host=mail.host,
                smtp_port=mail.port,
                public_base_url="http://notification.test",
                profile_service_url=profile_url,
                profile_service_api_key=TEST_KEYS[Scope.WRITE][0],
            )
            async with running_api(settings) as api:
                await hold_nobody_back(api)
                await feed(api, [event(CustomerCreated(customer=snapshot), MORNING)])
                await feed(api, [churn_warning(customer_id, MORNING)])
                await deliver(api, MORNING + timedelta(minutes=1))
                [email] = mail.messages
                header = email.message["List-Unsubscribe"]
                link = re.search(r"<(http[^>]+)>", header).group(1)  # type: ignore[union-attr]
                assert link in email.part("text/plain")
                path = link.removeprefix("http://notification.test")

                page = await api.client.get(path)  # a link scanner's GET changes nothing
                assert page.status_code == 200
                assert "<form" in page.text
                done = await api.client.post(path, data={"List-Unsubscribe": "One-Click"})
                assert done.status_code == 200
                assert "no longer receive" in done.text
                tampered = await api.client.post(path[:-2] + "xx")
                assert tampered.status_code == 404

                # The next offer is held back at once, before profile-service even knows.
                later = MORNING + timedelta(days=5)
                await feed(api, [churn_warning(customer_id, later, warning_id="w-2")])
                await deliver(api, later + timedelta(minutes=1))
                async with api.app.state.runtime.sessions() as session:
                    second = await session.scalar(
                        select(Notification).where(Notification.trigger_at == later)
                    )
                assert (second.status, second.reason) == ("suppressed", "unsubscribed")

                async with httpx.AsyncClient() as client:
                    confirmed = await forward_opt_outs(
                        api.app.state.runtime.sessions,
                        client,
                        profile_url,
                        TEST_KEYS[Scope.WRITE][0],
                    )
                assert confirmed == 1
        consents = (await profile.get(f"/v1/customers/{customer_id}/consents")).json()
        email_marketing = next(
            c for c in consents if (c["channel"], c["purpose"]) == ("email", "marketing")
        )
        assert (email_marketing["granted"], email_marketing["source"]) == (
            False,
            "unsubscribe-link",
        )
    assert len(mail.messages) == 1


async def test_a_webhook_receiver_cannot_mint_unsubscribe_tokens(notification_api: ApiClient):
    # A receiver knows the webhook secret (and its decoded key): nothing it signs with them
    # opts a customer out, since unsubscribe links have a secret of their own.
    await feed(notification_api, [event(CustomerCreated(customer=_snapshot("c-9")), MORNING)])
    settings: NotificationSettings = notification_api.app.state.settings
    receiver_knows = [settings.webhook_key(), settings.webhook_secret.get_secret_value().encode()]

    for secret in receiver_knows:
        token = unsubscribe_token(secret, "c-9", NotificationChannel.EMAIL, Purpose.MARKETING)
        forged = await notification_api.client.post(f"/v1/unsubscribe/{token}")
        assert forged.status_code == 404, forged.text
    genuine = unsubscribe_token(
        settings.unsubscribe_secret_bytes(), "c-9", NotificationChannel.EMAIL, Purpose.MARKETING
    )
    done = await notification_api.client.post(f"/v1/unsubscribe/{genuine}")
    assert done.status_code == 200, done.text


def _snapshot(customer_id: str) -> CustomerSnapshot:
    return CustomerSnapshot(
        customer_id=customer_id,
        email="ada@example.com",
        created_at=MORNING - timedelta(days=90),
        updated_at=MORNING - timedelta(days=90),
    )
