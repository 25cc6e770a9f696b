"""lifecycle_sweep.py's sweeps: run the aging sweep on the loaded base, time it, and describe
the end state and where the time went.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from crm_shared import ServiceRuntime, utc_now
from lib.cprofile_report import own_seconds, profile_lines
from lib.processes import (
    process_tree_cpu_seconds,
)
from lib.sql_timing import RssSampler, StatementTimer
from lib.sweep_base import DAY, RULES, STATE_DATE
from lifecycle_service.app import create_app
from lifecycle_service.domain.rules import Band
from lifecycle_service.settings import LifecycleSettings
from lifecycle_service.workflows.rules_store import replace_rules
from lifecycle_service.workflows.sweep import Review, SweepReport, sweep


@dataclass(frozen=True)
class SweepRow:
    backend: str
    phase: str
    due: int
    report: SweepReport
    wall: float
    process_cpu: float
    db_cpu: float | None
    rss_before: int
    rss_peak: int
    outbox_rows: int
    transitions: int
    statements: list[tuple[str, int, int, float, str]]
    note: str = ""
    storage: str = ""

    def breakdown(self) -> str:
        """Where the sweep's wall time went, statement kind by kind."""
        lines = [f"{self.backend} {self.phase}: {self.wall:.2f} s"]
        for kind, calls, rows, seconds, per_call in self.statements:
            counted = f"{calls:,} calls, {rows:,} parameter sets" if calls else ""
            lines.append(
                f"  {seconds:8.2f} s {seconds / self.wall:6.1%}  {kind:<32} {counted} {per_call}"
            )
        if self.storage:
            lines.append(f"  {self.storage}")
        return "\n".join(lines)

    def cells(self) -> list[object]:
        r = self.report
        return [
            self.backend,
            self.phase,
            self.due,
            r.reviewed,
            r.moved,
            r.warnings_raised,
            r.warnings_closed,
            self.outbox_rows,
            round(self.wall, 2),
            round(r.reviewed / self.wall) if self.wall > 0 else 0,
            f"{self.process_cpu / self.wall:.0%}" if self.wall > 0 else "-",
            "-" if self.db_cpu is None else f"{self.db_cpu / self.wall:.0%}",
            round(self.rss_before / 2**20),
            round(self.rss_peak / 2**20),
            f"{self.wall / GOAL_SECONDS:.1f}x" if self.phase != "daily" else "-",
            self.note,
        ]


HEADERS = [
    "backend",
    "sweep",
    "due",
    "reviewed",
    "moved",
    "warnings raised",
    "warnings closed",
    "outbox rows",
    "seconds",
    "customers/s",
    "process CPU",
    "db CPU",
    "RSS before MiB",
    "RSS peak MiB",
    "vs 10 s goal",
    "note",
]


@contextlib.asynccontextmanager
async def lifecycle_runtime(database_url: str, chunk_size: int) -> AsyncIterator[ServiceRuntime]:
    """lifecycle-service's runtime from its own app factory and lifespan (Kafka off)."""
    settings = LifecycleSettings(
        database_url=database_url,
        environment="test",
        kafka_enabled=False,
        sweep_interval_seconds=0,
        sweep_chunk_size=chunk_size,
        log_level="WARNING",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime: ServiceRuntime = app.state.runtime
        yield runtime


async def _scalar(runtime: ServiceRuntime, sql: str, **params: Any) -> int:
    async with runtime.engine.connect() as connection:
        return int((await connection.execute(text(sql), params)).scalar_one())


# What the sweep wrote, independent of the machine's load: the WAL it generated and how the
# table and its indexes grew (new row versions placed off their page, index page splits).
_STORAGE = (
    "SELECT pg_current_wal_lsn(),"
    " pg_relation_size('customer_lifecycles'),"
    " pg_indexes_size('customer_lifecycles')"
)


async def _storage(runtime: ServiceRuntime) -> tuple[Any, ...] | None:
    if runtime.engine.dialect.name != "postgresql":
        return None
    async with runtime.engine.connect() as connection:
        return tuple((await connection.execute(text(_STORAGE))).one())


async def _storage_note(runtime: ServiceRuntime, before: tuple[Any, ...] | None) -> str:
    after = await _storage(runtime)
    if before is None or after is None:
        return ""
    mib = 2**20  # asyncpg reads a pg_lsn as its byte position
    wal = (after[0] - before[0]) / mib
    return (
        f"WAL {wal:,.1f} MiB; customer_lifecycles heap {before[1] / mib:,.1f} -> "
        f"{after[1] / mib:,.1f} MiB, indexes {before[2] / mib:,.1f} -> {after[2] / mib:,.1f} MiB"
    )


async def timed_sweep(
    runtime: ServiceRuntime,
    backend: str,
    phase: str,
    as_of: datetime,
    db_pid: int | None,
    profile: cProfile.Profile | None,
    timer: StatementTimer,
    review: Review,
    note: str = "",
) -> SweepRow:
    """One sweep at `as_of` through ``workflows.sweep.sweep``, with its costs."""
    due = await _scalar(
        runtime, "select count(*) from customer_lifecycles where next_review_at <= :t", t=as_of
    )
    outbox_before = await _scalar(runtime, "select count(*) from outbox")
    storage_before = await _storage(runtime)
    transitions_before = await _scalar(runtime, "select count(*) from stage_transitions")
    cpu_before = time.process_time()
    db_before = process_tree_cpu_seconds(db_pid) if db_pid else None
    timer.reset()
    with RssSampler() as rss:
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        try:
            report = await sweep(
                runtime,
                as_of,
                chunk_size=runtime.settings.sweep_chunk_size,  # type: ignore[attr-defined]
                trigger="bench",
                clock=utc_now,
                review=review,
            )
        finally:
            if profile is not None:
                profile.disable()
        wall = time.perf_counter() - started
    statements = timer.breakdown(wall)
    storage = await _storage_note(runtime, storage_before)
    process_cpu = time.process_time() - cpu_before
    db_cpu = process_tree_cpu_seconds(db_pid) - db_before if db_pid and db_before else None
    return SweepRow(
        backend=backend,
        phase=phase,
        due=due,
        report=report,
        wall=wall,
        process_cpu=process_cpu,
        db_cpu=db_cpu,
        rss_before=rss.before,
        rss_peak=rss.peak,
        outbox_rows=await _scalar(runtime, "select count(*) from outbox") - outbox_before,
        transitions=await _scalar(runtime, "select count(*) from stage_transitions")
        - transitions_before,
        statements=statements,
        note=note,
        storage=storage,
    )


async def stage_counts(runtime: ServiceRuntime) -> dict[str, int]:
    async with runtime.engine.connect() as connection:
        rows = await connection.execute(
            text("select stage, count(*) from customer_lifecycles group by stage order by stage")
        )
        return {stage: int(n) for stage, n in rows}


async def run_sweeps(
    label: str, database_url: str, db_pid: int | None, args: argparse.Namespace, review: Review
) -> tuple[list[SweepRow], list[str], str]:
    """The daily sweep, then the rules change and the full sweep; rows, notes, end state."""
    profile = cProfile.Profile() if args.profile else None
    notes: list[str] = []
    daily_at = STATE_DATE + DAY
    change_at = daily_at + timedelta(hours=1)
    async with lifecycle_runtime(database_url, args.chunk_size) as runtime:
        timer = StatementTimer(runtime.engine)
        before = await stage_counts(runtime)
        daily = await timed_sweep(runtime, label, "daily", daily_at, db_pid, profile, timer, review)
        print(f"[{label}] daily sweep: {daily.report.reviewed:,} reviewed", flush=True)
        started = time.perf_counter()
        async with runtime.sessions() as session, session.begin():
            await replace_rules(
                session, TIGHTER_RULES, author="bench", comment="tighter", now=change_at
            )
        update_seconds = time.perf_counter() - started
        notes.append(
            f"{label}: rules change (replace_rules; before issue 12's rules review it also "
            f"UPDATEd every buyer's next_review_at) took {update_seconds:.2f} s"
        )
        worst = await timed_sweep(
            runtime,
            label,
            "rules change (all due)",
            change_at,
            db_pid,
            profile,
            timer,
            review,
            note=f"+ {update_seconds:.1f} s UPDATE",
        )
        print(f"[{label}] full sweep: {worst.wall:.1f} s", flush=True)
        after = await stage_counts(runtime)
        again = await timed_sweep(
            runtime, label, "same moment again", change_at, db_pid, profile, timer, review
        )
        fingerprint = await end_state(runtime)
    notes.append(
        f"{label}: stages before -> after: "
        + ", ".join(f"{s} {before.get(s, 0):,}->{after.get(s, 0):,}" for s in sorted(after))
    )
    notes += [daily.breakdown(), worst.breakdown()]
    if profile is not None:
        notes.append(summarise_profile(profile, sum(r.wall for r in (daily, worst, again))))
    return [daily, worst, again], notes, fingerprint


# What the sweeps left, without the random warning ids: equal when both paths did the same.
END_STATE = (
    "select customer_id, stage, stage_since, next_review_at from customer_lifecycles"
    " order by customer_id",
    "select customer_id, status, raised_at, changed_at, reasons, recommended_action"
    " from churn_warnings order by customer_id, raised_at, status",
    "select customer_id, previous_stage, stage, at, cause, reason from stage_transitions"
    " order by customer_id, at, stage",
    "select day, metric, delta from daily_counts order by day, metric",
    "select topic, message_key from outbox order by message_key, topic, payload",
)


async def end_state(runtime: ServiceRuntime) -> str:
    """A digest of every customer's stage and review time, warnings, transitions, outbox."""
    digest = hashlib.sha256()
    async with runtime.engine.connect() as connection:
        for sql in END_STATE:
            result = await connection.stream(text(sql))
            async for rows in result.partitions(50_000):
                digest.update(repr([tuple(row) for row in rows]).encode())
    return digest.hexdigest()[:16]


GOAL_SECONDS = 10.0


# The rules change of the worst case: tighter silence thresholds, so the full sweep moves some.
TIGHTER_RULES = dataclasses.replace(
    RULES, at_risk_rhythm=Band(enter=1.8, leave=1.5), warning_silence_factor=1.3
)


# Cumulative seconds of the sweep's parts. cProfile does not see SQLAlchemy's greenlet switch
# when a statement waits for the database, so a part's figure includes the waits of the
# statements it runs; the statement breakdown separates those.
PARTS = (
    ("sweep (all)", "sweep.py", "sweep"),
    ("sweep chunks", "sweep.py", "_sweep_chunk"),
    ("load open warnings (ORM query + objects)", "customer_rows.py", "customers_with_warnings"),
    ("rows -> domain states (state_of)", "customer_rows.py", "state_of"),
    ("CustomerChanges.__post_init__", "changes.py", "__post_init__"),
    ("domain: on_sweep", "stages.py", "on_sweep"),
    ("domain: review_warning", "changes.py", "review_warning"),
    ("CustomerChanges.apply", "changes.py", "apply"),
    ("store (all)", "changes.py", "store"),
    ("store: customers upsert (17 columns)", "changes.py", "_store_customers"),
    ("store: next_review_at (domain)", "review.py", "next_review_at"),
    ("store: transitions", "changes.py", "_store_transitions"),
    ("store: warnings", "changes.py", "_store_warnings"),
    ("store: counts (daily, cohort cells)", "changes.py", "_store_counts"),
    ("store: cohort_cells (domain)", "counts.py", "cohort_cells"),
    ("store: build events", "changes.py", "_events"),
    ("store: outbox insert", "_outbox.py", "add_many_to_outbox"),
)


def summarise_profile(profile: cProfile.Profile, wall: float) -> str:
    """Where the Python time of all sweeps went, and the top functions by own time."""
    lines = [
        f"cProfile over the sweeps: wall {wall:.1f} s (profiled), "
        f"{own_seconds(profile):.1f} s attributed",
        "parts (cumulative s, database waits of their statements included):",
    ]
    return "\n".join(lines + profile_lines(profile, PARTS))
