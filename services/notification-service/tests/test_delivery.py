"""From triggering events to delivered messages: once, with consent, cap and quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notification_servers import SmtpSink, sms_gateway, smtp_sink, webhook_receiver
from sqlalchemy import select

from crm_contracts import (
    Channel,
    CustomerErased,
    ScoreUpdated,
    Stage,
)
from crm_shared.testing import ApiClient
from notification_service.db.models import PLUMBING, Contact, Notification
from notification_service.domain.signing import webhook_secret
from notification_service.events.handlers import apply_events
from notification_testing import (
    app_settings,
    churn_warning,
    customer,
    deliver,
    event,
    feed,
    order,
    running_api,
    scores,
    stage_changed,
)

# 10:00 in Berlin: outside quiet hours.
MORNING = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


async def notifications(api: ApiClient) -> list[Notification]:
    async with api.app.state.runtime.sessions() as session:
        return list(await session.scalars(select(Notification).order_by(Notification.created_at)))


async def published_types(api: ApiClient) -> list[str]:
    async with api.app.state.runtime.sessions() as session:
        payloads = await session.scalars(select(PLUMBING.outbox.c.payload))
        return [p.split('"type":"')[1].split('"')[0] for p in payloads]


async def test_the_same_churn_warning_delivered_three_times_sends_one_email(
    notification_api: ApiClient, mail: SmtpSink
):
    warning = churn_warning("c1", MORNING)
    await feed(notification_api, [customer("c1", MORNING - timedelta(days=30))])
    await feed(notification_api, [warning, warning, warning])

    await deliver(notification_api, MORNING + timedelta(minutes=1))
    await deliver(notification_api, MORNING + timedelta(minutes=2))

    assert len(mail.messages) == 1
    email = mail.messages[0]
    assert email.rcpt_tos == ["ada@example.com"]
    assert "15% off" in email.part("text/plain")
    [sent] = await notifications(notification_api)
    assert (sent.status, sent.rule_id, sent.channel) == ("sent", "warning-retention-offer", "email")
    assert "notification.sent" in await published_types(notification_api)


async def test_a_customer_without_marketing_consent_gets_no_marketing_and_the_reason_is_logged(
    notification_api: ApiClient, mail: SmtpSink
):
    await feed(notification_api, [customer("c1", MORNING, marketing=())])
    await feed(notification_api, [churn_warning("c1", MORNING)])

    await deliver(notification_api, MORNING + timedelta(minutes=1))

    assert mail.messages == []
    [held] = await notifications(notification_api)
    assert (held.status, held.reason) == ("suppressed", "no_consent")
    assert "email: no_consent" in (held.detail or "")
    assert await published_types(notification_api) == ["notification.suppressed"]


async def test_a_fourth_offer_inside_the_cap_window_is_deferred_or_suppressed(
    notification_api: ApiClient, mail: SmtpSink
):
    await feed(notification_api, [customer("c1", MORNING - timedelta(days=60))])
    for n in range(4):
        at = MORNING + timedelta(hours=n)
        await feed(notification_api, [churn_warning("c1", at, warning_id=f"w-{n}")])
        await deliver(notification_api, at + timedelta(minutes=1))

    assert len(mail.messages) == 1  # at most one marketing message in 72 hours
    outcomes = [(n.status, n.reason) for n in await notifications(notification_api)]
    assert outcomes[0] == ("sent", None)
    assert all(
        status == "scheduled" or (status, reason) == ("suppressed", "frequency_cap")
        for status, reason in outcomes[1:]
    ), outcomes

    # Past the window, a deferred offer goes; none is ever sent twice.
    for hours in (73, 146, 219):
        await deliver(notification_api, MORNING + timedelta(hours=hours, minutes=30))
    sent = [n for n in await notifications(notification_api) if n.status == "sent"]
    assert len(mail.messages) == len(sent) <= 2


async def test_a_message_due_at_23_local_time_goes_out_at_9_the_next_morning(
    notification_api: ApiClient, mail: SmtpSink
):
    late = datetime(2025, 3, 14, 22, 0, tzinfo=UTC)  # 23:00 in Berlin
    await feed(notification_api, [customer("c1", late - timedelta(days=30))])
    await feed(notification_api, [churn_warning("c1", late)])

    await deliver(notification_api, late)
    assert mail.messages == []
    [waiting] = await notifications(notification_api)
    assert waiting.status == "scheduled"
    assert waiting.due_at == datetime(2025, 3, 15, 8, 0, tzinfo=UTC)  # 09:00 in Berlin

    await deliver(notification_api, datetime(2025, 3, 15, 7, 59, tzinfo=UTC))
    assert mail.messages == []
    await deliver(notification_api, datetime(2025, 3, 15, 8, 0, tzinfo=UTC))
    assert len(mail.messages) == 1


async def test_a_refused_address_fails_at_once_without_retrying(database_url: str, mail: SmtpSink):
    async with smtp_sink(refuse={"ada@example.com": "550 no such mailbox"}) as refusing:
        settings = app_settings(database_url, smtp_host=refusing.host, smtp_port=refusing.port)
        async with running_api(settings) as api:
            await feed(api, [customer("c1", MORNING - timedelta(days=30))])
            await feed(api, [churn_warning("c1", MORNING)])
            await deliver(api, MORNING + timedelta(minutes=1))
            [failed] = await notifications(api)
            assert (failed.status, failed.attempts) == ("failed", 1)
            assert "550" in (failed.detail or "")
            assert "notification.failed" in await published_types(api)


async def test_an_sms_gateway_failing_twice_then_succeeding_delivers_once(database_url: str):
    async with sms_gateway(fail_first=2) as gateway:
        settings = app_settings(
            database_url, sms_gateway_url=gateway.url, sms_gateway_token="gateway-token"
        )
        async with running_api(settings) as api:
            churned = stage_changed("c1", MORNING, Stage.CHURNED, Stage.DORMANT)
            await feed(
                api,
                [
                    customer(
                        "c1",
                        MORNING - timedelta(days=400),
                        email=None,
                        phone="+4915112345678",
                        marketing=[Channel.SMS],
                    ),
                    churned,
                ],
            )
            moment = MORNING
            for _ in range(4):
                moment += timedelta(seconds=10)  # past any retry wait (1-4 s in tests)
                await deliver(api, moment)

            assert len(gateway.requests) == 3
            assert len(gateway.messages) == 1
            [sms] = await notifications(api)
            assert (sms.status, sms.attempts, sms.channel) == ("sent", 3, "sms")
            assert gateway.messages[0]["to"] == "+4915112345678"


async def test_a_high_value_warning_posts_a_signed_task_instead_of_a_marketing_message(
    database_url: str, mail: SmtpSink
):
    secret = webhook_secret(b"webhook-key-for-tests")
    async with webhook_receiver(secret) as receiver:
        settings = app_settings(
            database_url,
            smtp_host=mail.host,
            smtp_port=mail.port,
            webhook_secret=secret,
            account_manager_webhook_url=receiver.url,
        )
        async with running_api(settings) as api:
            # 23:00 in Berlin: a task for a person is not held for the customer's quiet hours.
            late = datetime(2025, 3, 14, 22, 0, tzinfo=UTC)
            await feed(api, [customer("vip", late - timedelta(days=300))])
            await feed(api, [churn_warning("vip", late, action="account_manager_task")])
            await deliver(api, late)

    assert mail.messages == []
    [task] = receiver.deliveries
    body = task.json()
    assert (body["task"], body["customer_id"], body["value_tier"]) == (
        "call_customer_at_risk",
        "vip",
        None,
    )
    assert receiver.rejected == []


async def test_a_delayed_offer_is_dropped_when_the_customer_bought_again(
    notification_api: ApiClient, mail: SmtpSink
):
    first = MORNING - timedelta(days=41)
    await feed(notification_api, [customer("c1", first - timedelta(days=1))])
    await feed(notification_api, [order("c1", "o1", first)])
    await deliver(notification_api, first + timedelta(minutes=1))  # welcome (service) goes
    await feed(notification_api, [order("c1", "o2", first + timedelta(days=20))])

    await deliver(notification_api, MORNING)

    by_rule = {n.rule_id: n for n in await notifications(notification_api)}
    assert by_rule["welcome-first-order"].status == "sent"
    offer = by_rule["offer-40d-no-repeat"]
    assert (offer.status, offer.reason) == ("suppressed", "no_longer_applies")


async def test_an_interrupted_send_is_closed_as_failed_and_never_sent_again(
    notification_api: ApiClient, mail: SmtpSink
):
    await feed(notification_api, [customer("c1", MORNING - timedelta(days=30))])
    await feed(notification_api, [churn_warning("c1", MORNING)])
    # The state a process killed after handing the email to SMTP leaves behind.
    async with notification_api.app.state.runtime.sessions() as session, session.begin():
        [row] = await session.scalars(select(Notification))
        row.status, row.decided_at, row.attempts = "sending", MORNING, 1
        row.channel, row.sender, row.handed_at = "email", "a-process-gone", MORNING

    await deliver(notification_api, MORNING + timedelta(minutes=30))

    assert mail.messages == []
    [closed] = await notifications(notification_api)
    assert closed.status == "failed"
    assert "not sent again" in (closed.detail or "")


async def test_scores_of_a_batch_reach_the_template_and_an_erasure_later_in_it_wins(
    notification_api: ApiClient,
):
    def scored(customer_id: str, risk: float, hours: int) -> ScoreUpdated:
        return scores(customer_id, MORNING + timedelta(hours=hours), risk)

    batch = [
        event(scored("kept", 0.4, 2), MORNING),
        event(scored("kept", 0.9, 1), MORNING),  # older, arriving later: not kept
        event(scored("gone", 0.5, 1), MORNING),
        event(CustomerErased(customer_id="gone", erased_at=MORNING), MORNING),
    ]
    async with notification_api.app.state.runtime.sessions() as session, session.begin():
        await apply_events(session, batch)

    async with notification_api.app.state.runtime.sessions() as session:
        contacts = {c.customer_id: c for c in await session.scalars(select(Contact))}
    assert set(contacts) == {"kept"}
    kept = contacts["kept"]
    assert (kept.churn_risk, kept.value_tier, kept.scores["rfm_segment"]) == (
        0.4,
        "profit",
        "Loyal",
    )
    assert not kept.known_from_profile
