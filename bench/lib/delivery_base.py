"""The data of notification_delivery.py: a contact base with triggering events and earlier
sends, an email-only base, and SMTP channels that time or pool their sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

import aiosmtplib

from crm_contracts import (
    Channel,
    CloudEvent,
    ConsentState,
    CustomerCreated,
    CustomerSnapshot,
    NotificationChannel,
    Purpose,
    Stage,
)
from lib.events import churn_warning, event, order, stage_changed
from notification_service.channels.base import (
    Channel as DeliveryChannel,
)
from notification_service.channels.base import (
    OutgoingMessage,
    TransientDeliveryError,
)
from notification_service.channels.email import SmtpChannel

CLOCK = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)  # T: the delivery rounds' fixed clock


HISTORY_AT = CLOCK - timedelta(hours=50)  # earlier marketing sends, for the frequency cap


HISTORY_SHARE = 0.10


SECOND_TRIGGER_SHARE = 0.15  # of the events: for a customer who already has one


# (zone, weight); at T the first three are in day time, the next four in quiet hours.
ZONES = (
    ("Europe/Berlin", 20),
    ("Europe/London", 10),
    ("Asia/Kolkata", 6),
    ("America/Sao_Paulo", 6),
    ("America/New_York", 14),  # 08:00
    ("America/Los_Angeles", 8),  # 05:00
    ("Asia/Tokyo", 6),  # 22:00
    ("Australia/Sydney", 4),  # 00:00
    (None, 8),  # unknown: UTC, 13:00
)


DAY_ZONES = ("Europe/Berlin", "Europe/London", "Europe/Paris", None)


TRIGGERS = (
    ("warning open: retention_offer", 35),
    ("warning open: account_manager_task", 5),
    ("warning updated (no rule)", 5),
    ("stage -> dormant", 20),
    ("stage -> churned", 10),
    ("stage -> at_risk (no rule)", 5),
    ("first order", 20),
)


EMAIL = NotificationChannel.EMAIL


def customer_created(
    customer_id: str,
    at: datetime,
    *,
    email: str | None,
    time_zone: str | None,
    consents: Sequence[tuple[Channel, Purpose, bool]],
) -> CloudEvent:
    """``customer.created`` with the given consent decisions (granted or withdrawn)."""
    snapshot = CustomerSnapshot(
        customer_id=customer_id,
        email=email,
        first_name="Ada",
        last_name="Lovelace",
        time_zone=time_zone,
        locale="en-GB",
        consents=[
            ConsentState(
                channel=channel, purpose=purpose, granted=granted, source="bench", changed_at=at
            )
            for channel, purpose, granted in consents
        ],
        created_at=at,
        updated_at=at,
    )
    return event(CustomerCreated(customer=snapshot), at)


@dataclass
class DecisionBase:
    """The in-app population's events, and what was drawn."""

    customers: list[CloudEvent]
    history: list[CloudEvent]
    triggers: list[CloudEvent]
    kinds: Counter[str]
    zones: Counter[str]
    consents: Counter[str]


def decision_base(customers: int, events: int, seed: int) -> DecisionBase:
    rng = random.Random(seed)
    base = DecisionBase([], [], [], Counter(), Counter(), Counter())
    zone_names = [z for z, _ in ZONES]
    zone_weights = [w for _, w in ZONES]
    for n in range(customers):
        customer_id = f"dec-{n:06d}"
        zone = rng.choices(zone_names, zone_weights)[0]
        roll = rng.random()
        push = "granted" if roll < 0.7 else "withdrawn" if roll < 0.8 else "never asked"
        consents = [(Channel.EMAIL, Purpose.MARKETING, True)]
        if push != "never asked":
            consents.append((Channel.PUSH, Purpose.MARKETING, push == "granted"))
        base.zones[zone or "(none: UTC)"] += 1
        base.consents[f"in-app marketing {push}"] += 1
        at = CLOCK - timedelta(days=rng.uniform(60, 700))
        base.customers.append(
            customer_created(customer_id, at, email=None, time_zone=zone, consents=consents)
        )
        if rng.random() < HISTORY_SHARE:
            base.history.append(churn_warning(customer_id, HISTORY_AT, warning_id=f"h-{n}"))
    kinds = [k for k, _ in TRIGGERS]
    weights = [w for _, w in TRIGGERS]
    first_part = max(1, round(events * (1 - SECOND_TRIGGER_SHARE)))
    for k in range(events):
        n = k % customers if k < first_part else rng.randrange(min(first_part, customers))
        customer_id = f"dec-{n:06d}"
        at = CLOCK - timedelta(minutes=rng.uniform(1, 360))
        kind = rng.choices(kinds, weights)[0]
        base.kinds[kind] += 1
        base.triggers.append(_trigger(kind, customer_id, at, k))
    return base


def _trigger(kind: str, customer_id: str, at: datetime, k: int) -> CloudEvent:
    if kind.startswith("warning"):
        action = "account_manager_task" if "account_manager" in kind else "retention_offer"
        status = "updated" if "updated" in kind else "open"
        return churn_warning(customer_id, at, action=action, status=status, warning_id=f"w-{k}")
    if kind == "first order":
        return order(customer_id, f"order-{k}", at)
    stage, previous = {
        "stage -> dormant": (Stage.DORMANT, Stage.AT_RISK),
        "stage -> churned": (Stage.CHURNED, Stage.DORMANT),
    }.get(kind, (Stage.AT_RISK, Stage.ACTIVE))
    return stage_changed(customer_id, at, stage, previous)


def email_base(prefix: str, count: int, seed: int) -> tuple[list[CloudEvent], list[CloudEvent]]:
    """Customers with an address and email marketing consent, and one retention offer each."""
    rng = random.Random(seed)
    customers: list[CloudEvent] = []
    triggers: list[CloudEvent] = []
    for n in range(count):
        customer_id = f"{prefix}-{n:06d}"
        at = CLOCK - timedelta(days=rng.uniform(60, 700))
        customers.append(
            customer_created(
                customer_id,
                at,
                email=f"{customer_id}@example.com",
                time_zone=rng.choice(DAY_ZONES),
                consents=[(Channel.EMAIL, Purpose.MARKETING, True)],
            )
        )
        warned = CLOCK - timedelta(minutes=rng.uniform(1, 30))
        triggers.append(churn_warning(customer_id, warned, warning_id=f"{prefix}-w-{n}"))
    return customers, triggers


class TimedChannel:
    """Delegates to a channel and keeps (start, end) of every send."""

    def __init__(self, inner: DeliveryChannel) -> None:
        self.inner = inner
        self.spans: list[tuple[float, float]] = []

    async def send(self, message: OutgoingMessage) -> str:
        started = time.perf_counter()
        try:
            return await self.inner.send(message)
        finally:
            self.spans.append((started, time.perf_counter()))


class PooledSmtpChannel:
    """The service's emails (``SmtpChannel.compose``) over at most ``size`` open connections.

    A sketch to measure what a pool gains, not a proposal as it stands: it has no idle timeout,
    no reconnect on a server-closed connection beyond dropping it, and no error classification.
    """

    def __init__(self, inner: SmtpChannel, host: str, port: int, sender: str, size: int) -> None:
        self._inner = inner
        self._host = host
        self._port = port
        self._sender = parseaddr(sender)[1]
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(size)
        self.connections = 0

    async def send(self, message: OutgoingMessage) -> str:
        email = self._inner.compose(message)
        async with self._slots:
            client = self._idle.pop() if self._idle else await self._connect()
            try:
                await client.send_message(
                    email, sender=self._sender, recipients=[message.recipient]
                )
            except (aiosmtplib.SMTPException, OSError) as error:
                client.close()
                raise TransientDeliveryError(f"pooled send: {type(error).__name__}") from error
            self._idle.append(client)
        return str(email["Message-ID"])

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname=self._host, port=self._port, timeout=10)
        await client.connect()
        self.connections += 1
        return client

    async def close(self) -> None:
        for client in self._idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        self._idle.clear()
