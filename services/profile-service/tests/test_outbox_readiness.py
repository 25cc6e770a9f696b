"""``/readyz`` and ``/metrics`` tell the truth about an outbox that does not move (issue 11, 1)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm_shared.testing import EmbeddedBroker
from profile_testing import Api, app_settings, running_api

pytestmark = pytest.mark.kafka


@pytest.fixture
async def api(tmp_path: Path, kafka_broker: EmbeddedBroker) -> AsyncIterator[Api]:
    settings = app_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'profile.db'}",
        kafka_enabled=True,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        service_name=f"profile-service-{tmp_path.name[-12:]}",
        outbox_stuck_after_seconds=1,
    )
    async with running_api(settings) as running:
        yield running


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


async def test_a_relay_that_stops_moving_fails_readiness_and_the_gauges_show_the_backlog(
    api: Api,
) -> None:
    ready = await api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": True, "broker": True, "outbox": True}
    assert ready.json()["details"]["outbox"]["parked"] == 0

    api.app.state.runtime.relay.stop()  # whatever the cause, nothing is published any more
    for n in range(3):
        await api.create_customer(email=f"waiting{n}@example.com")
    deadline = datetime.now(UTC) + timedelta(seconds=60)
    while (stuck := await api.get("/readyz")).status_code != 503:
        assert datetime.now(UTC) < deadline, "readiness never noticed the stuck outbox"
        await asyncio.sleep(0.1)
    assert stuck.json()["checks"] == {"database": True, "broker": True, "outbox": False}
    assert stuck.json()["details"]["outbox"]["oldest_unsent_age_seconds"] > 1

    await api.app.state.runtime.relay.refresh_gauges()
    exported = (await api.get("/metrics")).text
    assert metric(exported, "outbox_pending") == 3
    assert metric(exported, "outbox_oldest_unsent_age_seconds") > 1
    assert metric(exported, "outbox_parked_rows") == 0
