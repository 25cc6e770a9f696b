"""Notification-service: decisions per second, and emails delivered per second to a local server.

Per backend (the embedded PostgreSQL; `--sqlite`: also SQLite), on a fresh database migrated
with ``python -m notification_service.migrate``, in this process through the service's own code:
``create_app`` with Kafka off and the delivery loop off (``delivery_interval_seconds=0``), its
lifespan entered (engine, sessions, default playbook and templates seeded, channels built by
``delivery_config`` from the settings), then the handlers and workflows the consumer and the
delivery loop call. Every moment the service asks a clock for is the fixed clock
T = 2026-11-24 13:00 UTC (``deliver_due``'s ``clock``), except the rows' ``created_at``.

  1. **Trigger -> queued.** `--customers` (10,000) ``customer.created`` events through
     ``events.handlers.apply_event`` in batches of `--feed-batch` (500) events per transaction,
     as the consumer applies a batch (without its inbox rows and Kafka decoding). The customers
     have no email (so nothing in this part leaves through SMTP: the default rules fall back to
     the in-app inbox, which is this database); consent to in-app marketing is granted for 70%,
     withdrawn for 10%, never asked for 20%; time zones are spread so that about a third are in
     quiet hours (21:00-09:00 local) at T. 10% of them got a retention offer in-app 50 hours
     before T (fed and delivered untimed, at T - 50 h), so the frequency cap has history.
     Then `--events` (as many as customers) triggering events, the last 15% for customers who
     already have one: ``churn.warning`` open (retention offer 35%, account-manager task 5%),
     ``churn.warning`` updated (matches no rule, 5%), ``lifecycle.stage_changed`` to dormant
     (20%), churned (10%) or at risk (no rule, 5%), and a first ``order.placed`` (20%: four
     rules, the welcome due now, the others in 15 to 40 days). All happened in the 6 hours
     before T. Timed: events/s from trigger to queued rows (rule matching, the contact
     replica, the ``INSERT ... ON CONFLICT DO NOTHING`` on the de-dup key).
  2. **Redelivery.** The same trigger events again through ``apply_event`` (the consumer's
     inbox would drop them first; this is the handler's own de-dup path, as after a replay):
     no new row may appear.
  3. **Decisions.** ``workflows.delivery.deliver_due`` rounds at T (``delivery_batch_size``
     rows per round) until a round claims nothing: every due row is decided (rule, consent,
     channel, quiet hours, cap and arbitration, in-app delivery with rendering, outbox event).
     Prints decisions/s and the split of outcomes from the ``notifications`` table.
  4. **Email.** `--emails` (5,000) customers with an address, email marketing consent and a
     day-time time zone get one retention offer each (fed untimed), then delivery rounds at T
     until the queue is empty send them to a local SMTP server (aiosmtpd in its own process,
     ``_support.SmtpSinkProcess``), through the service's ``SmtpChannel`` (one connection per
     message). The sink keeps each message's ``X-CRM-Notification-Id`` and ``Message-ID``; the
     run checks that exactly that many arrived, with no duplicate and none missing.
     Unless `--no-pool`, the same again for as many other customers with a bench-only channel
     that keeps up to ``parallel_sends`` SMTP connections open (``PooledSmtpChannel`` below,
     the service's ``compose``): what a connection pool would gain. Each send is timed by a
     wrapper around the channel (compose + SMTP dialogue, event-loop waits included).

Prints the machine and load, per phase the rate, the CPU of this process, PostgreSQL and the
sink, the RSS, the wall time of every kind of statement (engine events, driver round trip
included), and the outcome split; `--profile` adds cProfile's top functions over the timed
phases (slower: a separate run). Nothing is asserted except the email counts, which are printed.

    python bench/notification_delivery.py [--customers 10000] [--events N] [--emails 5000]
        [--feed-batch 500] [--batch-size 200] [--parallel-sends 20] [--sqlite] [--no-postgres]
        [--no-pool] [--profile] [--seed 1] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import io
import os
import pstats
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import aiosmtplib
from _support import (
    SmtpSinkProcess,
    create_postgres_database,
    embedded_postgres,
    format_table,
    install_termination_handlers,
    machine_summary,
    migrate_service,
    percentile,
    process_tree_cpu_seconds,
    run_async,
    sources_digest,
    sqlite_url,
)
from lifecycle_sweep import RssSampler, StatementTimer, postgres_settings
from sqlalchemy import text

from crm_shared import ServiceRuntime
from crm_shared.contracts import (
    Channel,
    CloudEvent,
    ConsentState,
    CustomerCreated,
    CustomerSnapshot,
    NotificationChannel,
    Purpose,
    Stage,
)
from notification_service.app import create_app
from notification_service.channels.base import (
    Channel as DeliveryChannel,
)
from notification_service.channels.base import (
    OutgoingMessage,
    TransientDeliveryError,
)
from notification_service.channels.email import SmtpChannel
from notification_service.events.handlers import apply_event
from notification_service.settings import NotificationSettings
from notification_service.workflows.delivery import DeliveryConfig, deliver_due

# The test suite's event factories (services/notification-service/tests), not copied here.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services/notification-service/tests"))
from notification_testing import churn_warning, event, order, stage_changed

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
DEFAULT_PARALLEL_SENDS = next(
    f.default for f in dataclasses.fields(DeliveryConfig) if f.name == "parallel_sends"
)
EMAIL = NotificationChannel.EMAIL
SOURCES = ("crm_shared", "notification_service")

# --------------------------------------------------------------------------------------------
# Events


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


# --------------------------------------------------------------------------------------------
# Channels: a timing wrapper, and a pooled SMTP sketch (bench only, not the service's code)


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


# --------------------------------------------------------------------------------------------
# Measuring a phase


@dataclass
class Phase:
    """One timed phase: what it did and what it cost."""

    backend: str
    name: str
    items: int
    unit: str
    wall: float = 0.0
    process_cpu: float = 0.0
    db_cpu: float | None = None
    sink_cpu: float | None = None
    rss_peak: int = 0
    statements: list[tuple[str, int, int, float, str]] = dataclasses.field(default_factory=list)
    note: str = ""

    def cells(self) -> list[object]:
        def share(seconds: float | None) -> str:
            return "-" if seconds is None or self.wall <= 0 else f"{seconds / self.wall:.0%}"

        rate = self.items / self.wall if self.wall > 0 else 0.0
        return [
            self.backend,
            self.name,
            self.items,
            self.unit,
            round(self.wall, 2),
            round(rate),
            round(self.wall / self.items * 1e6) if self.items else "-",
            share(self.process_cpu),
            share(self.db_cpu),
            share(self.sink_cpu),
            round(self.rss_peak / 2**20),
            self.note,
        ]

    def breakdown(self) -> str:
        lines = [f"{self.backend} {self.name}: {self.wall:.2f} s"]
        for kind, calls, rows, seconds, per_call in self.statements:
            counted = f"{calls:,} calls, {rows:,} parameter sets" if calls else ""
            share = seconds / self.wall if self.wall > 0 else 0.0
            lines.append(f"  {seconds:8.2f} s {share:6.1%}  {kind:<32} {counted} {per_call}")
        return "\n".join(lines)


HEADERS = [
    "backend",
    "phase",
    "items",
    "unit",
    "seconds",
    "per second",
    "µs each",
    "process CPU",
    "db CPU",
    "sink CPU",
    "RSS peak MiB",
    "note",
]


@dataclass
class Context:
    """What every phase of one backend shares."""

    backend: str
    runtime: ServiceRuntime
    timer: StatementTimer
    db_pid: int | None
    sink: SmtpSinkProcess
    profile: cProfile.Profile | None


@contextlib.contextmanager
def measured(ctx: Context, phase: Phase) -> Iterator[Phase]:
    """Time the block into ``phase``: wall, CPU of this process, the database and the sink."""
    cpu = time.process_time()
    db = process_tree_cpu_seconds(ctx.db_pid) if ctx.db_pid else None
    sink = process_tree_cpu_seconds(ctx.sink.pid)
    ctx.timer.reset()
    with RssSampler() as rss:
        started = time.perf_counter()
        if ctx.profile is not None:
            ctx.profile.enable()
        try:
            yield phase
        finally:
            if ctx.profile is not None:
                ctx.profile.disable()
            phase.wall = time.perf_counter() - started
    phase.process_cpu = time.process_time() - cpu
    if ctx.db_pid and db is not None:
        phase.db_cpu = process_tree_cpu_seconds(ctx.db_pid) - db
    phase.sink_cpu = process_tree_cpu_seconds(ctx.sink.pid) - sink
    phase.rss_peak = rss.peak
    phase.statements = ctx.timer.breakdown(phase.wall)


async def feed(runtime: ServiceRuntime, events: Sequence[CloudEvent], batch: int) -> None:
    """``apply_event`` for every event, one transaction per ``batch`` events."""
    for start in range(0, len(events), batch):
        async with runtime.sessions() as session, session.begin():
            for item in events[start : start + batch]:
                await apply_event(session, item)


async def deliver_until_empty(
    runtime: ServiceRuntime, config: DeliveryConfig, at: datetime, rounds: list[int] | None = None
) -> int:
    """``deliver_due`` rounds at ``at`` until one claims nothing; rows claimed in all."""
    claimed = 0
    while True:
        count = await deliver_due(runtime, config, lambda: at, lambda: 0.5)
        if count == 0:
            return claimed
        claimed += count
        if rounds is not None:
            rounds.append(count)


async def scalar(runtime: ServiceRuntime, sql: str, **params: Any) -> int:
    async with runtime.engine.connect() as connection:
        return int((await connection.execute(text(sql), params)).scalar_one())


async def rows(runtime: ServiceRuntime, sql: str, **params: Any) -> list[Any]:
    async with runtime.engine.connect() as connection:
        return list(await connection.execute(text(sql), params))


def outcome_of(status: str, reason: str | None, channel: str | None, detail: str | None) -> str:
    if status == "sent":
        return f"sent ({channel})"
    if status == "suppressed":
        return f"suppressed: {reason}"
    if status == "failed":
        return f"failed: {(detail or '')[:40]}"
    if status == "scheduled" and detail and detail.startswith("quiet hours"):
        return "deferred: quiet hours"
    if status == "scheduled" and detail and "frequency cap" in detail:
        return "deferred: frequency cap"
    return f"{status} (not decided)"


# --------------------------------------------------------------------------------------------
# The phases


async def decision_phases(
    ctx: Context, config: DeliveryConfig, args: argparse.Namespace
) -> tuple[list[Phase], list[str]]:
    """Parts 1-3: customers, triggers, redelivery, decisions; phases and notes."""
    runtime, backend = ctx.runtime, ctx.backend
    base = decision_base(args.customers, args.events, args.seed)
    notes = [
        f"{backend}: in-app population: {args.customers:,} customers without email; "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(base.consents.items()))
        + "; time zones: "
        + ", ".join(f"{z} {n:,}" for z, n in base.zones.most_common()),
        f"{backend}: {len(base.triggers):,} trigger events: "
        + ", ".join(f"{k} {v:,}" for k, v in base.kinds.most_common()),
    ]
    customers = Phase(backend, "customer.created -> contact replica", len(base.customers), "events")
    with measured(ctx, customers):
        await feed(runtime, base.customers, args.feed_batch)
    print(f"[{backend}] {customers.items:,} customers in {customers.wall:.1f} s", flush=True)

    await feed(runtime, base.history, args.feed_batch)
    history = await deliver_until_empty(runtime, config, HISTORY_AT + timedelta(minutes=1))
    notes.append(
        f"{backend}: history (untimed): {len(base.history):,} retention offers at T - 50 h, "
        f"{history:,} decided then (in-app sends count against the cap at T)"
    )

    queued = Phase(backend, "trigger -> queued", len(base.triggers), "events")
    with measured(ctx, queued):
        await feed(runtime, base.triggers, args.feed_batch)
    rows_after = await scalar(runtime, "select count(*) from notifications")
    due = [
        r.notification_id
        for r in await rows(
            runtime,
            "select notification_id from notifications where status = 'scheduled' and due_at <= :t",
            t=CLOCK,
        )
    ]
    queued.note = f"{rows_after:,} rows queued in all, {len(due):,} due at T"
    print(
        f"[{backend}] {queued.items:,} triggers in {queued.wall:.1f} s; {queued.note}", flush=True
    )

    redelivered = Phase(backend, "redelivery (de-dup)", len(base.triggers), "events")
    with measured(ctx, redelivered):
        await feed(runtime, base.triggers, args.feed_batch)
    new_rows = await scalar(runtime, "select count(*) from notifications") - rows_after
    redelivered.note = f"{new_rows:,} new rows (0 = de-dup held)"

    rounds: list[int] = []
    decided = Phase(backend, "decisions (in-app, deliver_due)", 0, "decisions")
    with measured(ctx, decided):
        decided.items = await deliver_until_empty(runtime, config, CLOCK, rounds)
    decided.note = f"{len(rounds)} rounds of up to {config.batch_size}"
    print(f"[{backend}] {decided.items:,} decisions in {decided.wall:.1f} s", flush=True)

    due_ids = set(due)
    outcomes: Counter[str] = Counter()
    for r in await rows(
        runtime,
        "select notification_id, status, reason, channel, "
        "case when status in ('scheduled', 'failed') then detail end as detail "
        "from notifications where customer_id like 'dec-%'",
    ):
        if r.notification_id in due_ids:
            outcomes[outcome_of(r.status, r.reason, r.channel, r.detail)] += 1
    inbox = await scalar(runtime, "select count(*) from inbox_messages")
    outbox = await scalar(runtime, "select count(*) from outbox")
    notes.append(
        f"{backend}: outcomes of the {len(due_ids):,} rows due at T: "
        + ", ".join(f"{k} {v:,}" for k, v in outcomes.most_common())
        + f" (inbox messages in all {inbox:,}, outbox rows {outbox:,})"
    )
    return [customers, queued, redelivered, decided], notes


@dataclass
class EmailRun:
    backend: str
    variant: str
    emails: int
    phase: Phase
    received: int
    unique_notification_ids: int
    unique_message_ids: int
    missing: int
    unexpected: int
    sent_rows: int
    send_seconds: float
    p50_ms: float
    p99_ms: float
    connections: int
    parallel_sends: int
    batch_size: int

    def cells(self) -> list[object]:
        wall = self.phase.wall
        return [
            self.backend,
            self.variant,
            self.emails,
            self.received,
            self.unique_notification_ids,
            self.received - self.unique_notification_ids,
            self.missing,
            self.sent_rows,
            round(wall, 2),
            round(self.received / wall) if wall > 0 else 0,
            f"{self.send_seconds / wall:.0%}" if wall > 0 else "-",
            round(self.p50_ms, 1),
            round(self.p99_ms, 1),
            self.connections,
            self.parallel_sends,
            self.batch_size,
            self.phase.cells()[7],
            self.phase.cells()[8],
            self.phase.cells()[9],
        ]


EMAIL_HEADERS = [
    "backend",
    "channel",
    "emails",
    "received",
    "unique ids",
    "duplicates",
    "missing",
    "rows sent",
    "seconds",
    "msgs/s",
    "in sends",
    "send p50 ms",
    "send p99 ms",
    "SMTP sessions",
    "parallel_sends",
    "batch_size",
    "process CPU",
    "db CPU",
    "sink CPU",
]


async def email_phase(
    ctx: Context, config: DeliveryConfig, args: argparse.Namespace, prefix: str, pooled: bool
) -> EmailRun:
    """Part 4: `--emails` retention offers due at T, delivered to the sink until none is left."""
    runtime, backend = ctx.runtime, ctx.backend
    customers, triggers = email_base(prefix, args.emails, args.seed + (2 if pooled else 1))
    await feed(runtime, customers, args.feed_batch)
    await feed(runtime, triggers, args.feed_batch)
    smtp = config.channels[EMAIL]
    assert isinstance(smtp, SmtpChannel)
    inner: DeliveryChannel = smtp
    pool: PooledSmtpChannel | None = None
    if pooled:
        settings = runtime.settings
        assert isinstance(settings, NotificationSettings)
        pool = PooledSmtpChannel(
            smtp, ctx.sink.host, ctx.sink.port, settings.smtp_sender, config.parallel_sends
        )
        inner = pool
    timed = TimedChannel(inner)
    run_config = dataclasses.replace(config, channels={**config.channels, EMAIL: timed})
    ctx.sink.reset()
    variant = "pooled (bench sketch)" if pooled else "SmtpChannel (as is)"
    phase = Phase(backend, f"email to the sink: {variant}", args.emails, "emails")
    rounds: list[int] = []
    send_seconds = 0.0
    with measured(ctx, phase):
        while True:
            before = len(timed.spans)
            claimed = await deliver_due(runtime, run_config, lambda: CLOCK, lambda: 0.5)
            spans = timed.spans[before:]
            if spans:
                send_seconds += max(e for _, e in spans) - min(s for s, _ in spans)
            if claimed == 0:
                break
            rounds.append(claimed)
    if pool is not None:
        await pool.close()
    report = ctx.sink.report()
    expected = {
        r.notification_id
        for r in await rows(
            runtime,
            "select notification_id from notifications where customer_id like :p",
            p=f"{prefix}-%",
        )
    }
    sent_rows = await scalar(
        runtime,
        "select count(*) from notifications where customer_id like :p "
        "and status = 'sent' and channel = 'email'",
        p=f"{prefix}-%",
    )
    received_ids = set(report.notification_ids)
    durations = sorted((e - s) * 1000 for s, e in timed.spans)
    phase.items = len(report.notification_ids)
    phase.note = f"{len(rounds)} rounds"
    run = EmailRun(
        backend=backend,
        variant=variant,
        emails=args.emails,
        phase=phase,
        received=len(report.notification_ids),
        unique_notification_ids=len(received_ids),
        unique_message_ids=len(set(report.message_ids)),
        missing=len(expected - received_ids),
        unexpected=len(received_ids - expected),
        sent_rows=sent_rows,
        send_seconds=send_seconds,
        p50_ms=percentile(durations, 0.5),
        p99_ms=percentile(durations, 0.99),
        connections=report.connections,
        parallel_sends=config.parallel_sends,
        batch_size=config.batch_size,
    )
    exact = run.received == args.emails == run.unique_message_ids and not run.missing
    print(
        f"[{backend}] {variant}: {run.received:,} of {args.emails:,} emails received in "
        f"{phase.wall:.1f} s ({'exactly once each' if exact else 'NOT exactly once'}); "
        f"unique Message-IDs {run.unique_message_ids:,}, not expected {run.unexpected:,}",
        flush=True,
    )
    return run


@contextlib.asynccontextmanager
async def notification_runtime(
    database_url: str, sink: SmtpSinkProcess, args: argparse.Namespace
) -> AsyncIterator[tuple[ServiceRuntime, DeliveryConfig]]:
    """notification-service's runtime and delivery config from its own factory and lifespan."""
    settings = NotificationSettings(
        database_url=database_url,
        environment="test",
        kafka_enabled=False,
        delivery_interval_seconds=0,
        delivery_batch_size=args.batch_size,
        smtp_host=sink.host,
        smtp_port=sink.port,
        log_level="WARNING",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        config: DeliveryConfig = app.state.delivery
        yield app.state.runtime, dataclasses.replace(config, parallel_sends=args.parallel_sends)


async def run_phases(
    backend: str,
    database_url: str,
    db_pid: int | None,
    sink: SmtpSinkProcess,
    args: argparse.Namespace,
) -> tuple[list[Phase], list[EmailRun], list[str]]:
    profile = cProfile.Profile() if args.profile else None
    async with notification_runtime(database_url, sink, args) as (runtime, config):
        ctx = Context(backend, runtime, StatementTimer(runtime.engine), db_pid, sink, profile)
        phases, notes = await decision_phases(ctx, config, args)
        emails = [await email_phase(ctx, config, args, "mail", pooled=False)]
        if not args.no_pool:
            emails.append(await email_phase(ctx, config, args, "pool", pooled=True))
    phases += [run.phase for run in emails]
    notes += [phase.breakdown() for phase in phases]
    if profile is not None:
        notes.append(summarise_profile(profile))
    return phases, emails, notes


# Cumulative seconds of the service's parts under cProfile (database waits of their statements
# included: cProfile does not see SQLAlchemy's greenlet switch).
PARTS = (
    ("apply_event", "handlers.py", "apply_event"),
    ("  contacts.record_snapshot", "contacts.py", "record_snapshot"),
    ("  contacts.record_consent", "contacts.py", "record_consent"),
    ("  contacts.record_stage", "contacts.py", "record_stage"),
    ("  contacts.record_order_if_new", "contacts.py", "record_order_if_new"),
    ("  schedule_notifications", "scheduling.py", "schedule_notifications"),
    ("    playbook_store.all_rules", "playbook_store.py", "all_rules"),
    ("    PlaybookRule.from_dict", "playbooks.py", "from_dict"),
    ("    matching_rules", "playbooks.py", "matching_rules"),
    ("deliver_due", "delivery.py", "deliver_due"),
    ("  _claim_due", "delivery.py", "_claim_due"),
    ("  _decide", "delivery.py", "_decide"),
    ("    _policy_checks", "delivery.py", "_policy_checks"),
    ("    arbitrate", "delivery_policy.py", "arbitrate"),
    ("    _prepare (render, in-app insert)", "delivery.py", "_prepare"),
    ("      render", "templates.py", "render"),
    ("      unsubscribe_url", "message_context.py", "unsubscribe_url"),
    ("    add_many_to_outbox", "_outbox.py", "add_many_to_outbox"),
    ("  _record", "delivery.py", "_record"),
    ("  SmtpChannel.compose", "email.py", "compose"),
    ("  SmtpChannel.send", "email.py", "send"),
)


def summarise_profile(profile: cProfile.Profile) -> str:
    stats = pstats.Stats(profile)
    entries: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    lines = ["cProfile over the timed phases, parts (cumulative s):"]
    for label, file_part, function in PARTS:
        cumulative = max(
            (
                value[3]
                for (filename, _, name), value in entries.items()
                if name == function and filename.endswith(file_part)
            ),
            default=0.0,
        )
        lines.append(f"  {cumulative:8.2f}  {label}")
    buffer = io.StringIO()
    pstats.Stats(profile, stream=buffer).sort_stats("tottime").print_stats(25)
    lines.append("top 25 by own time:")
    lines += [
        "  " + line
        for line in buffer.getvalue().splitlines()
        if line.strip() and not line.lstrip().startswith(("Ordered by", "List reduced"))
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def run_backend(
    backend: str,
    database_url: str,
    db_pid: int | None,
    sink: SmtpSinkProcess,
    args: argparse.Namespace,
) -> tuple[list[Phase], list[EmailRun], list[str]]:
    migrate_service(
        "notification_service",
        "NOTIFICATION_",
        database_url,
        args.workdir / f"migrate-{backend}.log",
    )
    described = "sqlite"
    if backend == "postgres":
        described = run_async(lambda: postgres_settings(database_url))
    phases, emails, notes = run_async(lambda: run_phases(backend, database_url, db_pid, sink, args))
    return phases, emails, [f"{backend}: {described}", *notes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, help="trigger events (default: --customers)")
    parser.add_argument("--emails", type=int, default=5_000)
    parser.add_argument("--feed-batch", type=int, default=500, help="events per transaction")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=NotificationSettings.model_fields["delivery_batch_size"].default,
        help="rows per delivery round (the service's default)",
    )
    parser.add_argument(
        "--parallel-sends",
        type=int,
        default=DEFAULT_PARALLEL_SENDS,
        help="sends in flight per round (the service's default)",
    )
    parser.add_argument("--sqlite", action="store_true", help="also on SQLite")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-pool", action="store_true", help="skip the pooled-SMTP sketch")
    parser.add_argument("--profile", action="store_true", help="cProfile the timed phases")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy the logs to DIR")
    args = parser.parse_args()
    args.events = args.customers if args.events is None else args.events
    if args.customers < 1 or args.emails < 1:
        parser.error("--customers and --emails must be at least 1")
    install_termination_handlers()

    print("# notification-service: decisions per second and emails delivered per second")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    print("command:", " ".join(["python", *sys.argv]))
    fingerprint = sources_digest(*SOURCES)
    print(f"sources (sha256 of crm_shared + notification_service *.py): {fingerprint}")
    print(
        f"clock T = {CLOCK:%Y-%m-%d %H:%M} UTC; feed batches of {args.feed_batch}; delivery "
        f"batch_size {args.batch_size}, parallel_sends {args.parallel_sends}",
        flush=True,
    )
    args.workdir = Path(tempfile.mkdtemp(prefix="bench-notification-"))
    phases: list[Phase] = []
    emails: list[EmailRun] = []
    notes: list[str] = []
    loads = [f"start {os.getloadavg()[0]:.2f}"]
    try:
        with SmtpSinkProcess(args.workdir / "smtp-sink.log") as sink:
            if not args.no_postgres:
                with embedded_postgres() as server:
                    url = create_postgres_database(server, "bench_notification_delivery")
                    result = run_backend("postgres", url, server.pid(), sink, args)
                    loads.append(f"after postgres {os.getloadavg()[0]:.2f}")
                    phases += result[0]
                    emails += result[1]
                    notes += result[2]
            if args.sqlite:
                url = sqlite_url(args.workdir / "notification.db")
                result = run_backend("sqlite", url, None, sink, args)
                loads.append(f"after sqlite {os.getloadavg()[0]:.2f}")
                phases += result[0]
                emails += result[1]
                notes += result[2]
    finally:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for log in args.workdir.glob("*.log"):
                shutil.copy(log, args.keep / log.name)
        shutil.rmtree(args.workdir, ignore_errors=True)

    if sources_digest(*SOURCES) != fingerprint:
        print(f"WARNING: the sources changed during the run (now {sources_digest(*SOURCES)})")
    print()
    print(format_table(HEADERS, [phase.cells() for phase in phases]))
    print()
    print(format_table(EMAIL_HEADERS, [run.cells() for run in emails]))
    print()
    for note in notes:
        print(note)
    print()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average (1 min): {', '.join(loads)}; now {machine_summary()['load average']}")
    print(
        "per second = items / seconds; µs each = seconds / items; CPU: share of one core over "
        "the phase (this process runs the service's code; db = the PostgreSQL server's process "
        "tree; sink = the SMTP server process). in sends = share of the email phase's wall time "
        "during which sends were in flight (first start to last end, per round); send p50/p99 "
        "= one SmtpChannel.send (compose + the SMTP dialogue, event-loop waits included); "
        "SMTP sessions = EHLOs the sink saw. "
        f"Process peak RSS over the whole run (ru_maxrss): {peak:,.0f} MiB."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
