"""The 360 view: built from events the other services publish, read in one statement."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import select

from crm_contracts import (
    ChurnWarning,
    EventPayload,
    Grade,
    Money,
    NotificationSent,
    NotificationSuppressed,
    ScoreUpdated,
    Stage,
    StageChanged,
    ValueTier,
    build_event,
    encode_event,
)
from crm_shared import Scope
from profile_service.api._common import CUSTOMER_360_SECTIONS
from profile_service.api.schemas import Customer360
from profile_service.db.models import NotificationView, ScoreView, StageView
from profile_service.events.view_batch import apply_view_batch
from profile_testing import Api, app_settings, running_api

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def scores_for(customer_id: str, *, as_of: datetime, churn_risk: float) -> ScoreUpdated:
    euros = Money(amount=Decimal("120.00"), currency="EUR")
    return ScoreUpdated(
        customer_id=customer_id,
        as_of=as_of,
        recency_score=4,
        frequency_score=3,
        monetary_score=5,
        rfm_segment="Loyal",
        order_count=3,
        total_spend=euros,
        spend_12m=euros,
        historic_clv=euros,
        churn_risk=churn_risk,
    )


async def publish(api: Api, *payloads: EventPayload) -> None:
    settings = api.app.state.settings
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        for payload in payloads:
            event = build_event(payload, source="/tests", time=NOW)
            await producer.send_and_wait(
                payload.topic, encode_event(event), key=event.subject.encode()
            )
    finally:
        await producer.stop()


@pytest.mark.kafka
async def test_360_shows_latest_scores_stage_and_messages(api_with_broker: Api) -> None:
    api = api_with_broker
    customer = await api.create_customer(email="three-sixty@example.com")
    cid = customer["id"]
    empty = (await api.get(f"/v1/customers/{cid}/360")).json()
    assert (empty["scores"], empty["lifecycle"], empty["recent_notifications"]) == (None, None, [])

    await publish(
        api,
        scores_for(cid, as_of=NOW, churn_risk=0.2),
        scores_for(cid, as_of=NOW - timedelta(days=1), churn_risk=0.9),  # late and older
        StageChanged(
            customer_id=cid, stage=Stage.ACTIVE, changed_at=NOW, cause="evt-1", reason="2nd order"
        ),
        NotificationSent(
            notification_id="n-1",
            customer_id=cid,
            channel="email",
            category="service",
            sent_at=NOW,
        ),
        NotificationSuppressed(
            notification_id="n-2",
            customer_id=cid,
            category="marketing",
            suppressed_at=NOW + timedelta(minutes=1),
            reason="no_consent",
        ),
    )
    view = {}
    for _ in range(200):
        view = (await api.get(f"/v1/customers/{cid}/360")).json()
        if len(view["recent_notifications"]) == 2 and view["lifecycle"]:
            break
        await asyncio.sleep(0.1)
    assert view["profile"]["email"] == "three-sixty@example.com"
    assert view["scores"]["churn_risk"] == 0.2
    assert view["lifecycle"]["stage"] == "active"
    assert [n["outcome"] for n in view["recent_notifications"]] == ["suppressed", "sent"]


async def test_the_read_model_keeps_ids_of_any_length(api: Api) -> None:
    # Event contracts bound no id length; a long id once sent the event to the dead letters.
    long_customer, long_notification = "shop-customer-" + "c" * 90, "shop-message-" + "n" * 90
    sent = NotificationSent(
        notification_id=long_notification,
        customer_id=long_customer,
        channel="email",
        category="service",
        sent_at=NOW,
    )
    async with api.app.state.runtime.sessions() as session, session.begin():
        await apply_view_batch(session, [build_event(sent, source="/tests", time=NOW)])

    async with api.app.state.runtime.sessions() as session:
        stored = await session.scalar(select(NotificationView.notification_id))
    assert stored == long_notification


async def test_the_newest_documents_win_whatever_order_they_arrive_in(api: Api) -> None:
    def stage(at: datetime, now: Stage) -> StageChanged:
        return StageChanged(
            customer_id="c-1", stage=now, changed_at=at, cause="sweep", reason="test"
        )

    later = NOW + timedelta(hours=1)
    # Within one batch: the newer scores and stage come first, older ones after them.
    await apply(
        api,
        scores_for("c-1", as_of=later, churn_risk=0.7),
        scores_for("c-1", as_of=NOW, churn_risk=0.1),
        stage(later, Stage.AT_RISK),
        stage(NOW, Stage.ACTIVE),
        sent("n-1", "c-1", NOW),
        sent("n-1", "c-1", NOW),  # redelivered outcome
    )
    # A later batch: still older documents, and the same outcome again.
    await apply(
        api,
        scores_for("c-1", as_of=NOW - timedelta(days=1), churn_risk=0.3),
        stage(NOW - timedelta(days=1), Stage.NEW),
        sent("n-1", "c-1", NOW),
    )

    async with api.app.state.runtime.sessions() as session:
        scores = await session.get(ScoreView, "c-1")
        stages = await session.get(StageView, "c-1")
        outcomes = (await session.scalars(select(NotificationView.notification_id))).all()
    assert scores is not None
    assert scores.scores["churn_risk"] == 0.7
    assert stages is not None
    assert stages.stage == "at_risk"
    assert outcomes == ["n-1"]

    # A newer one in a later batch replaces them.
    await apply(api, scores_for("c-1", as_of=later + timedelta(days=1), churn_risk=0.2))
    async with api.app.state.runtime.sessions() as session:
        scores = await session.get(ScoreView, "c-1")
    assert scores is not None
    assert scores.scores["churn_risk"] == 0.2


async def apply(api: Api, *payloads: EventPayload) -> None:
    """Feed read-model events through the consumer's handler, as one batch."""
    events = [build_event(payload, source="/tests", time=NOW) for payload in payloads]
    async with api.app.state.runtime.sessions() as session, session.begin():
        await apply_view_batch(session, events)


def sent(notification_id: str, customer_id: str, at: datetime) -> NotificationSent:
    return NotificationSent(
        notification_id=notification_id,
        customer_id=customer_id,
        channel="email",
        category="service",
        sent_at=at,
    )


def warning_for(customer_id: str, *, churn_risk: float) -> ChurnWarning:
    return ChurnWarning(
        warning_id=f"w-{customer_id}",
        customer_id=customer_id,
        raised_at=NOW,
        status="open",
        reasons=["spend_dropped"],
        churn_risk=churn_risk,
        value_tier=ValueTier.GROWTH,
        grade=Grade.HIGH,
        recommended_action="retention_offer",
    )


async def test_360_is_the_profile_consents_and_stored_documents(api: Api) -> None:
    # Runs on SQLite and PostgreSQL: the view is one statement whose JSON aggregation
    # differs between them, and the documents are passed through as the database holds them.
    customer = await api.create_customer(
        email="whole@example.com", external_id="shop:1", tags=["vip"], attributes={"tier": 2}
    )
    cid = customer["id"]
    for channel, purpose in (("sms", "service"), ("email", "marketing")):
        answer = await api.put(
            f"/v1/customers/{cid}/consents/{channel}/{purpose}",
            json={"granted": True, "source": "app", "changed_at": "2026-11-01T10:00:00Z"},
        )
        assert answer.status_code == 200
    scores = scores_for(cid, as_of=NOW, churn_risk=0.25)
    stage = StageChanged(
        customer_id=cid, stage=Stage.ACTIVE, changed_at=NOW, cause="evt-1", reason="2nd order"
    )
    warning = warning_for(cid, churn_risk=0.8)
    older, tied_first, tied_second = (
        sent("n-older", cid, NOW - timedelta(hours=1)),
        sent("n-tied-1", cid, NOW),
        sent("n-tied-2", cid, NOW),  # same time, stored later: comes first
    )
    other = sent("n-other", "someone-else", NOW + timedelta(hours=1))
    await apply(api, scores, stage, warning, older, tied_first, tied_second, other)

    response = await api.get(f"/v1/customers/{cid}/360")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    view = response.json()
    assert Customer360.model_validate(view).model_dump(mode="json") == view
    assert view == {
        "profile": (await api.get(f"/v1/customers/{cid}")).json(),
        "consents": (await api.get(f"/v1/customers/{cid}/consents")).json(),
        "profiling": {"objected": False, "since": None, "withheld": []},
        "scores": scores.model_dump(mode="json"),
        "lifecycle": stage.model_dump(mode="json"),
        "churn_warning": warning.model_dump(mode="json"),
        "recent_notifications": [
            {"outcome": "sent", **message.model_dump(mode="json")}
            for message in (tied_second, tied_first, older)
        ],
    }
    assert [c["channel"] for c in view["consents"]] == ["email", "sms"]
    assert view["profile"]["external_ids"] == ["shop:1"]


async def test_360_keeps_only_the_most_recent_messages(database_url: str) -> None:
    async with running_api(app_settings(database_url, recent_notifications_in_360=2)) as api:
        cid = (await api.create_customer(email="busy@example.com"))["id"]
        await api.put(
            f"/v1/customers/{cid}/consents/email/marketing",
            json={"granted": False, "source": "unsubscribe"},
        )
        await apply(api, *(sent(f"n-{n}", cid, NOW + timedelta(minutes=n)) for n in range(5)))

        view = (await api.get(f"/v1/customers/{cid}/360")).json()

    assert [n["notification_id"] for n in view["recent_notifications"]] == ["n-4", "n-3"]
    assert view["consents"][0]["granted"] is False


async def test_360_of_a_customer_the_other_services_never_mentioned(api: Api) -> None:
    cid = (await api.create_customer(email="quiet@example.com"))["id"]

    view = (await api.get(f"/v1/customers/{cid}/360")).json()

    assert view["consents"] == []
    assert view["profile"]["external_ids"] == []
    assert (view["scores"], view["lifecycle"], view["churn_warning"]) == (None, None, None)
    assert view["recent_notifications"] == []


async def test_360_shows_a_warning_that_came_before_any_stage(api: Api) -> None:
    cid = (await api.create_customer(email="warned@example.com"))["id"]
    warning = warning_for(cid, churn_risk=0.7)
    await apply(api, warning)

    view = (await api.get(f"/v1/customers/{cid}/360")).json()

    assert view["lifecycle"] is None
    assert view["churn_warning"] == warning.model_dump(mode="json")


async def test_360_of_unknown_erased_and_merged_customers(api: Api) -> None:
    survivor = await api.create_customer(email="stays@example.com")
    merged = await api.create_customer(email="goes@example.com")
    erased = await api.create_customer(email="erased@example.com")
    assert (
        await api.post(
            f"/v1/customers/{survivor['id']}/merge", json={"merged_customer_id": merged["id"]}
        )
    ).status_code == 201
    deleted = await api.client.delete(f"/v1/customers/{erased['id']}", headers=api.as_(Scope.ADMIN))
    assert deleted.status_code == 204

    moved = await api.get(f"/v1/customers/{merged['id']}/360")
    assert moved.status_code == 308
    assert moved.headers["location"] == f"/v1/customers/{survivor['id']}/360"
    assert (await api.get(f"/v1/customers/{erased['id']}/360")).status_code == 410
    unknown = await api.get("/v1/customers/no-such-customer/360")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/problem+json"


def test_the_360_body_writes_every_field_of_customer360_in_order() -> None:
    # The body is assembled section by section (api/_common.py); a field added to the model
    # without its section, or sections out of order, would change the documented shape.
    assert [name for name, _ in CUSTOMER_360_SECTIONS] == list(Customer360.model_fields)


async def test_360s_read_together_are_each_the_read_alone(database_url: str) -> None:
    # With the cache off every read goes to the database; on PostgreSQL the reads that arrive
    # together are one statement (customer_view.Customer360Reads), which must answer each
    # exactly as a read on its own does, refusals included.
    async with running_api(app_settings(database_url, customer_360_cache_seconds=0)) as api:
        full = (await api.create_customer(email="full@example.com", external_id="shop:7"))["id"]
        for channel, purpose in (("sms", "service"), ("email", "marketing")):
            await api.put(
                f"/v1/customers/{full}/consents/{channel}/{purpose}",
                json={"granted": True, "source": "app", "changed_at": "2026-11-01T10:00:00Z"},
            )
        quiet = (await api.create_customer(email="quiet-one@example.com"))["id"]
        warned = (await api.create_customer(email="warned-one@example.com"))["id"]
        survivor = (await api.create_customer(email="survivor@example.com"))["id"]
        merged = (await api.create_customer(email="merged-one@example.com"))["id"]
        erased = (await api.create_customer(email="erased-one@example.com"))["id"]
        await api.post(f"/v1/customers/{survivor}/merge", json={"merged_customer_id": merged})
        await api.client.delete(f"/v1/customers/{erased}", headers=api.as_(Scope.ADMIN))
        await apply(
            api,
            scores_for(full, as_of=NOW, churn_risk=0.3),
            StageChanged(
                customer_id=full, stage=Stage.ACTIVE, changed_at=NOW, cause="e", reason="r"
            ),
            warning_for(full, churn_risk=0.6),
            warning_for(warned, churn_risk=0.7),
            *(sent(f"n-{n}", full, NOW + timedelta(minutes=n)) for n in range(3)),
            sent("n-s", survivor, NOW),
        )
        ids = [full, quiet, warned, survivor, merged, erased, "no-such-customer"]

        async def answer(customer_id: str) -> tuple[int, bytes, str | None, str]:
            response = await api.get(f"/v1/customers/{customer_id}/360")
            headers = response.headers
            return (
                response.status_code,
                response.content,
                headers.get("location"),
                headers["content-type"],
            )

        alone = [await answer(customer_id) for customer_id in ids]
        together = await asyncio.gather(*(answer(customer_id) for customer_id in ids * 3))

    assert [status for status, *_ in alone] == [200, 200, 200, 200, 308, 410, 404]
    assert together == alone * 3
    reads = api.app.state.customer_360_reads
    if database_url.startswith("postgresql"):
        assert reads.batches.keys > reads.batches.batches  # some statements read several
    else:
        assert reads.batches is None
