"""notification_delivery.py's decision phases: feed the events, run delivery rounds until the
queue is empty, and count each outcome with its CPU and SQL time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from crm_contracts import (
    CloudEvent,
)
from crm_shared import ServiceRuntime
from lib.backends import SmtpSinkProcess
from lib.delivery_base import (
    CLOCK,
    HISTORY_AT,
    decision_base,
)
from lib.processes import (
    process_tree_cpu_seconds,
)
from lib.sql_timing import RssSampler, StatementTimer
from notification_service.events.handlers import apply_events
from notification_service.workflows.delivery import DeliveryConfig, deliver_due


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
    """``apply_events`` (the consumer's batch handler) on ``batch`` events per transaction."""
    for start in range(0, len(events), batch):
        async with runtime.sessions() as session, session.begin():
            await apply_events(session, events[start : start + batch])


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
