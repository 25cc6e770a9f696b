"""notification-service on the real broker: redelivered events send once; opt-outs reach profile."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from notification_servers import SmtpSink

from crm_contracts import CloudEvent, encode_event
from crm_shared.testing import EmbeddedBroker
from notification_testing import (
    app_settings,
    churn_warning,
    customer,
    hold_nobody_back,
    running_api,
)

pytestmark = pytest.mark.kafka


def daytime_zone(now: datetime) -> str:
    """A time zone where it is around noon now, so quiet hours never hold the test's mail."""
    offset = (12 - now.hour + 12) % 24 - 12  # -12..11 hours from UTC
    # Etc/GMT zones have their sign inverted: Etc/GMT-2 is two hours *ahead* of UTC.
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"


async def publish(broker: EmbeddedBroker, events: Sequence[CloudEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
    await producer.start()
    try:
        for item in events:
            await producer.send_and_wait(
                str(item.data.topic), encode_event(item), key=item.subject.encode()
            )
    finally:
        await producer.stop()


async def wait_for(condition, seconds: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.1)


async def test_a_churn_warning_delivered_three_times_by_kafka_sends_one_email(
    tmp_path: Path, kafka_broker: EmbeddedBroker, mail: SmtpSink
):
    now = datetime.now(UTC)
    settings = app_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'notification.db'}",
        kafka_enabled=True,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        service_name=f"notification-{uuid.uuid4().hex[:10]}",
        smtp_host=mail.host,
        smtp_port=mail.port,
        delivery_interval_seconds=0.2,
    )
    customer_id = f"k-{uuid.uuid4().hex[:8]}"
    warning = churn_warning(customer_id, now)
    async with running_api(settings) as api:
        await hold_nobody_back(api)
        await publish(
            kafka_broker,
            [customer(customer_id, now, time_zone=daytime_zone(now)), warning, warning, warning],
        )
        await wait_for(lambda: len(mail.messages) >= 1)
        await asyncio.sleep(2.0)  # long enough for a second copy to show up, were there one
        log = (await api.get("/v1/notifications", params={"customer_id": customer_id})).json()

    ours = [m for m in mail.messages if m.rcpt_tos == ["ada@example.com"]]
    assert len(ours) == 1
    assert [n["status"] for n in log["items"]] == ["sent"]
