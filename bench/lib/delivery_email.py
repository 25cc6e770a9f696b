"""notification_delivery.py's email phase: real SMTP sends to the local sink, timed per send."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from lib.delivery_base import (
    CLOCK,
    EMAIL,
    PooledSmtpChannel,
    TimedChannel,
    email_base,
)
from lib.delivery_phases import (
    Context,
    Phase,
    feed,
    measured,
    rows,
    scalar,
)
from lib.report import percentile
from notification_service.channels.base import (
    Channel as DeliveryChannel,
)
from notification_service.channels.email import SmtpChannel
from notification_service.settings import NotificationSettings
from notification_service.workflows.delivery import DeliveryConfig, deliver_due


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
    # The retention offer holds back its control group (10%, by a hash of the customer id):
    # those rows are decided "suppressed, holdout" and no email is due for them.
    expected = {
        r.notification_id
        for r in await rows(
            runtime,
            "select notification_id from notifications where customer_id like :p"
            " and reason is distinct from 'holdout'",
            p=f"{prefix}-%",
        )
    }
    held_out = await scalar(
        runtime,
        "select count(*) from notifications where customer_id like :p and reason = 'holdout'",
        p=f"{prefix}-%",
    )
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
    exact = run.received == len(expected) == run.unique_message_ids and not run.missing
    print(
        f"[{backend}] {variant}: {run.received:,} of {len(expected):,} emails due"
        f" ({args.emails:,} offers, {held_out:,} held out) received in "
        f"{phase.wall:.1f} s ({'exactly once each' if exact else 'NOT exactly once'}); "
        f"unique Message-IDs {run.unique_message_ids:,}, not expected {run.unexpected:,}",
        flush=True,
    )
    return run
