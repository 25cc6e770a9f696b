"""Lifecycle-service: the aging sweep over a million customers, on PostgreSQL (and SQLite).

The product's goal: a sweep over 1,000,000 customers in under 10 seconds on PostgreSQL. Per
backend, on a fresh database migrated with ``python -m lifecycle_service.migrate``:

  1. `--customers` (1,000,000) customers are generated as they would stand at the state date
     D (2026-11-01 00:00 UTC) and bulk-loaded straight into ``customer_lifecycles`` (and their
     open warnings into ``churn_warnings``): PostgreSQL through asyncpg's binary COPY, SQLite
     through SQLAlchemy Core ``executemany`` on a plain sqlite3 connection. About 4% are
     prospects (never bought); the buyers' first purchases are spread over the two years before
     D; 35% of them are repeat buyers with a lognormal rhythm (median 45 days) and exponential
     gaps, the others bought once; 85% of buyers carry scores (churn risk growing with the
     silence measured in their rhythm, value tier, grade, CLV, and an expected interpurchase
     time, also for one-time buyers, as scoring-service publishes it). Stages, open warnings
     and ``next_review_at`` come from the service's own domain functions at D (``stage_for``
     applied to its own result, ``warning_changes``, ``next_review_at``), so the base is what
     the service would have stored; a sample is checked to be a fixed point of ``on_sweep``.
     Then ``VACUUM ANALYZE`` (PostgreSQL), as autovacuum would have done on a live database.
  2. The sweep runs in this process through the service's code: ``create_app`` with Kafka
     off and the scheduled sweep off, its lifespan entered (``crm_shared.run_service`` builds
     the engine and sessions), then ``workflows.sweep.sweep(runtime, as_of, chunk_size=...)``
     exactly as ``POST /v1/sweeps`` calls it. Timed, in one run:
       a. "daily": a sweep at D + 1 day, when the stored state is up to date at D: only the
          customers whose review time falls in that day are read.
       b. "rules change": new stage rules stored at D + 1 day + 1 hour through the service's
          ``replace_rules`` (tighter: at_risk_rhythm enters at 1.8x instead of 2x the rhythm,
          and a warning at 1.3x instead of 1.5x), which sets every buyer's ``next_review_at``
          to that moment (its UPDATE is timed on its own), then a full sweep at that moment:
          every buyer is due.
     Each row reports what the sweep reviewed, moved, and which warnings it raised and closed,
     its wall time and customers/s, the CPU of this process and of the database during it, and
     this process's RSS before the sweep and at its peak (sampled every 50 ms).

With `--review per_customer,arrays` (the default) the base is generated once and loaded into
one database per review path of ``workflows.sweep.sweep``: ``per_customer`` (every due customer
through the domain functions, the path before issue 12) and ``arrays`` (a chunk reviewed on
numpy arrays by ``domain.review_arrays``; only movers and warning changes go through the domain
functions). Both run the same sweeps in the same run, and a digest of what they left (stages,
review times, warnings, transitions, daily counts, outbox) must be identical.

`--profile` runs every sweep under cProfile (slower: use a separate run) and prints where the
Python time goes; the database's share is the wall time the process spent waiting.

    python bench/lifecycle_sweep.py [--customers 1000000] [--chunk-size 5000] [--sqlite]
        [--no-postgres] [--review per_customer,arrays] [--seed 1] [--profile] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import hashlib
import io
import json
import math
import os
import pstats
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from _support import (
    PYTHON,
    create_postgres_database,
    embedded_postgres,
    format_table,
    install_termination_handlers,
    machine_summary,
    process_tree_cpu_seconds,
    run_async,
    sqlite_url,
    tail,
)
from lifecycle_consume import source_fingerprint
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from crm_shared import ServiceRuntime, utc_now
from crm_shared.contracts import Grade, Stage, ValueTier
from lifecycle_service.app import create_app
from lifecycle_service.db.models import ChurnWarningRow
from lifecycle_service.domain.churn_warnings import ChurnWarningRecord
from lifecycle_service.domain.counts import month_index
from lifecycle_service.domain.review import next_review_at
from lifecycle_service.domain.rules import Band, StageRules
from lifecycle_service.domain.stages import CustomerLifecycle, on_sweep, stage_for
from lifecycle_service.domain.warning_policy import warning_changes
from lifecycle_service.settings import LifecycleSettings
from lifecycle_service.workflows.customer_rows import (
    CUSTOMERS,
    state_values,
    warning_values,
)
from lifecycle_service.workflows.rules_store import replace_rules
from lifecycle_service.workflows.sweep import Review, SweepReport, sweep

GOAL_SECONDS = 10.0
STATE_DATE = datetime(2026, 11, 1, tzinfo=UTC)  # D: the stored state is up to date here
HISTORY_DAYS = 730
PROSPECT_SHARE = 0.04
REPEAT_SHARE = 0.35  # of buyers
SCORED_SHARE = 0.85  # of buyers
LOAD_CHUNK = 50_000
FIXED_POINT_EVERY = 50  # check every 50th generated state
RSS_SAMPLE_SECONDS = 0.05
DAY = timedelta(days=1)
TIERS = (ValueTier.STRATEGIC_PARTNER, ValueTier.GROWTH, ValueTier.PROFIT, ValueTier.BASIC)
TIER_WEIGHTS = (2, 18, 10, 70)
GRADES = (Grade.VIP, Grade.HIGH, Grade.MEDIUM, Grade.LOW)
GRADE_WEIGHTS = (2, 10, 38, 50)
RULES = StageRules()
# The rules change of the worst case: tighter silence thresholds, so the full sweep moves some.
TIGHTER_RULES = dataclasses.replace(
    RULES, at_risk_rhythm=Band(enter=1.8, leave=1.5), warning_silence_factor=1.3
)
TABLES = ("customer_lifecycles", "churn_warnings")

# --------------------------------------------------------------------------------------------
# The customer base


@dataclass(frozen=True)
class GeneratedCustomer:
    """One customer as the service would have stored it at the state date."""

    state: CustomerLifecycle
    active_months: list[int]
    clv_currency: str | None
    warning: ChurnWarningRecord | None
    next_review_at: datetime | None

    def row(self) -> dict[str, Any]:
        """The ``customer_lifecycles`` row, in the service's own column mapping."""
        return {
            **state_values(self.state),
            "active_months": self.active_months,
            "clv_currency": self.clv_currency,
            "next_review_at": self.next_review_at,
        }


def _ago(rng: random.Random, days: float, at: datetime) -> datetime:
    """A uniform moment in the `days` before `at` (whole seconds)."""
    return at - timedelta(seconds=int(rng.uniform(0, days * 86_400)))


def _purchases(rng: random.Random, as_of: datetime) -> tuple[list[datetime], float | None]:
    """Purchase moments (ascending, all before `as_of`) and the true rhythm of repeat buyers."""
    first = _ago(rng, HISTORY_DAYS, as_of)
    if rng.random() >= REPEAT_SHARE:
        return [first], None
    rhythm = rng.lognormvariate(math.log(45), 0.6)
    wanted = 2 + min(int(rng.expovariate(1 / 4)), 60)  # 2 orders or more, mean about 6
    moments, at = [first], first
    for _ in range(wanted - 1):
        at += timedelta(seconds=int(rng.expovariate(1 / rhythm) * 86_400) + 3_600)
        if at >= as_of:
            break
        moments.append(at)
    return moments, rhythm


def _settled_stage(state: CustomerLifecycle, as_of: datetime) -> CustomerLifecycle:
    """The state with the stage the rules give at `as_of`, and a plausible `stage_since`.

    `stage_for` is a fixed point but depends on the current stage (hysteresis), so it is
    applied to its own result until the stage holds.
    """
    for _ in range(4):
        stage = stage_for(state, as_of, RULES).stage
        if stage is state.stage:
            break
        state = dataclasses.replace(state, stage=stage)
    first, last = state.first_purchase_at, state.last_purchase_at
    assert first is not None
    assert last is not None
    if state.stage is Stage.NEW:
        since = first
    elif state.stage is Stage.WON_BACK:
        since = state.stage_since
    elif state.stage in (Stage.ACTIVE, Stage.LOYAL):
        since = min(max(first + RULES.new_days * DAY, last), as_of)
    else:  # declining: since some moment of the silence
        since = last + (as_of - last) * 0.5
    return dataclasses.replace(state, stage_since=since)


def generate_customer(rng: random.Random, as_of: datetime) -> GeneratedCustomer:
    """One customer at `as_of`, stage, warning and review time from the domain functions."""
    customer_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if rng.random() < PROSPECT_SHARE:
        prospect = CustomerLifecycle(customer_id, Stage.PROSPECT, _ago(rng, HISTORY_DAYS, as_of))
        return GeneratedCustomer(prospect, [], None, None, None)
    moments, rhythm = _purchases(rng, as_of)
    first, last = moments[0], moments[-1]
    values = [round(rng.lognormvariate(math.log(55), 0.7), 2) for _ in moments]
    silent_days = (as_of - last) / DAY
    scores: dict[str, Any] = {}
    currency = None
    if rng.random() < SCORED_SHARE:
        if len(moments) >= 2 and rhythm is not None:
            expected = rhythm * rng.uniform(0.8, 1.25)
        else:  # the models' population estimate for a one-time buyer
            expected = rng.lognormvariate(math.log(160), 0.4)
        churn = 1 - math.exp(-silent_days / (2.5 * expected)) + rng.gauss(0, 0.05)
        tier = rng.choices(TIERS, TIER_WEIGHTS)[0]
        scores = {
            "expected_interpurchase_days": round(expected, 2),
            "churn_risk": round(min(max(churn, 0.0), 0.99), 4),
            "value_tier": tier,
            "grade": rng.choices(GRADES, GRADE_WEIGHTS)[0],
            "predicted_clv_12m": round(sum(values) * rng.uniform(0.1, 1.5), 2),
            "scores_as_of": max(last, _ago(rng, 1, as_of)),
        }
        currency = "USD"
    state = CustomerLifecycle(
        customer_id=customer_id,
        stage=Stage.ACTIVE,
        stage_since=last,
        first_purchase_at=first,
        last_purchase_at=last,
        order_count=len(moments),
        average_order_value=round(sum(values) / len(values), 2),
        last_order_value=values[-1],
        **scores,
    )
    if len(moments) >= 3 and silent_days < RULES.won_back_settling_days and rng.random() < 0.1:
        state = dataclasses.replace(state, stage=Stage.WON_BACK)  # bought after declining
    state = _settled_stage(state, as_of)
    warning = None
    warning_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    for change in warning_changes(None, state, RULES, as_of, warning_id):
        # Raised some time after the last purchase (a purchase would have closed it) and
        # less than the expiry ago (else the sweep at `as_of` would have closed it as lost).
        oldest = max(last, as_of - (RULES.warning_expiry_days - 1) * DAY)
        raised = oldest + (as_of - oldest) * rng.random()
        warning = dataclasses.replace(change, raised_at=raised, changed_at=raised)
    months = sorted({month_index(moment) for moment in moments})
    review = next_review_at(state, warning, RULES, as_of)
    return GeneratedCustomer(state, months, currency, warning, review)


def generate_chunks(count: int, seed: int, as_of: datetime) -> Iterator[list[GeneratedCustomer]]:
    """`count` customers in lists of `LOAD_CHUNK`, deterministic for a seed."""
    rng = random.Random(seed)
    for start in range(0, count, LOAD_CHUNK):
        yield [generate_customer(rng, as_of) for _ in range(min(LOAD_CHUNK, count - start))]


@dataclass
class BaseSummary:
    """What was generated and loaded."""

    customers: int = 0
    warnings: int = 0
    stages: Counter[str] = dataclasses.field(default_factory=Counter)
    repeat_buyers: int = 0
    scored: int = 0
    without_review: int = 0
    due_in_a_day: int = 0
    not_fixed_points: int = 0
    generate_seconds: float = 0.0
    load_seconds: float = 0.0
    vacuum_seconds: float = 0.0

    def add(self, chunk: list[GeneratedCustomer], as_of: datetime) -> None:
        for customer in chunk:
            state = customer.state
            self.customers += 1
            self.stages[state.stage.value] += 1
            self.warnings += customer.warning is not None
            self.repeat_buyers += state.order_count >= 2
            self.scored += state.churn_risk is not None
            self.without_review += customer.next_review_at is None
            if customer.next_review_at is not None and customer.next_review_at <= as_of + DAY:
                self.due_in_a_day += 1
        for customer in chunk[::FIXED_POINT_EVERY]:
            if on_sweep(customer.state, as_of, RULES)[1] is not None:
                self.not_fixed_points += 1


# --------------------------------------------------------------------------------------------
# Loading


def _customer_record(customer: GeneratedCustomer) -> tuple[Any, ...]:
    row = customer.row()
    row["active_months"] = json.dumps(row["active_months"])
    return tuple(row[column.name] for column in CUSTOMERS.columns)


def _warning_record(warning: ChurnWarningRecord, columns: list[str]) -> tuple[Any, ...]:
    row = warning_values(warning)
    row["reasons"] = json.dumps(row["reasons"])
    return tuple(row[name] for name in columns)


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


async def load_postgres(database_urls: list[str], args: argparse.Namespace) -> BaseSummary:
    """Generate the base once and COPY each chunk into every database, then VACUUM ANALYZE."""
    summary = BaseSummary()
    warning_columns = [column.name for column in ChurnWarningRow.__table__.columns]
    connections = [await asyncpg.connect(asyncpg_dsn(url)) for url in database_urls]
    try:
        for chunk in _timed_chunks(args, summary):
            started = time.perf_counter()
            customers = [_customer_record(c) for c in chunk]
            warnings = [_warning_record(c.warning, warning_columns) for c in chunk if c.warning]
            for connection in connections:
                await connection.copy_records_to_table(
                    "customer_lifecycles",
                    records=customers,
                    columns=[column.name for column in CUSTOMERS.columns],
                )
                if warnings:
                    await connection.copy_records_to_table(
                        "churn_warnings", records=warnings, columns=warning_columns
                    )
            summary.load_seconds += time.perf_counter() - started
        started = time.perf_counter()
        for connection in connections:
            for table in TABLES:
                await connection.execute(f"VACUUM ANALYZE {table}")
        summary.vacuum_seconds = time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()
    return summary


def load_sqlite(database_urls: list[str], args: argparse.Namespace) -> BaseSummary:
    """Generate the base once and insert it into every database through SQLAlchemy Core."""
    summary = BaseSummary()
    engines = [create_engine(make_url(url).set(drivername="sqlite")) for url in database_urls]
    warnings_table = ChurnWarningRow.__table__
    try:
        for chunk in _timed_chunks(args, summary):
            started = time.perf_counter()
            customers = [c.row() for c in chunk]
            warnings = [warning_values(c.warning) for c in chunk if c.warning is not None]
            for engine in engines:
                with engine.begin() as connection:
                    connection.execute(insert(CUSTOMERS), customers)
                    if warnings:
                        connection.execute(insert(warnings_table), warnings)
            summary.load_seconds += time.perf_counter() - started
        started = time.perf_counter()
        for engine in engines:
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
        summary.vacuum_seconds = time.perf_counter() - started
    finally:
        for engine in engines:
            engine.dispose()
    return summary


def _timed_chunks(args: argparse.Namespace, summary: BaseSummary) -> Iterator[list[Any]]:
    chunks = generate_chunks(args.customers, args.seed, STATE_DATE)
    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        if chunk is None:
            return
        summary.add(chunk, STATE_DATE)
        summary.generate_seconds += time.perf_counter() - started
        yield chunk
        if summary.customers % 200_000 == 0:
            print(f"  loaded {summary.customers:,}", flush=True)


def migrate(database_url: str, log_path: Path) -> None:
    """``python -m lifecycle_service.migrate`` on a fresh database."""
    env = {**os.environ, "LIFECYCLE_DATABASE_URL": database_url}
    with log_path.open("ab") as log:
        result = subprocess.run(
            [PYTHON, "-m", "lifecycle_service.migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=180,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"migration failed (exit {result.returncode}):\n{tail(log_path)}")


# --------------------------------------------------------------------------------------------
# Sweeps, through the service's own code


class RssSampler:
    """This process's resident set size, sampled in a thread while the block runs."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.before = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


_STATEMENT_TARGET = re.compile(r"^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)", re.IGNORECASE)
_SELECT_FROM = re.compile(r"\bFROM\s+(\w+)", re.IGNORECASE)


def statement_kind(statement: str) -> str:
    """``upsert customer_lifecycles``, ``select churn_warnings``...: what a statement does."""
    target = _STATEMENT_TARGET.match(statement)
    if target is not None:
        verb = target.group(1).split()[0].lower()
        if verb == "insert" and "ON CONFLICT" in statement.upper():
            verb = "upsert"
        return f"{verb} {target.group(2)}"
    if "advisory" in statement:
        return "advisory lock"
    table = _SELECT_FROM.search(statement)
    return f"select {table.group(1)}" if table else statement.split()[0].lower()


class StatementTimer:
    """Wall time of every statement by kind, driver round trip included (engine events).

    The time between ``before_cursor_execute`` and ``after_cursor_execute`` is the database's
    work plus the driver's encoding, the socket and the decoding of the rows; the sweep's wall
    time minus these is the Python around them (SQLAlchemy's compile and result processing,
    the domain functions, building the parameters).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = {}
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.rows.clear()
        self.durations.clear()

    def _before(self, connection: Any, *_args: Any) -> None:
        connection.info["bench_statement_started"] = time.perf_counter()

    def _after(
        self,
        connection: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        started = connection.info.pop("bench_statement_started", None)
        if started is None:
            return
        kind = statement_kind(statement)
        elapsed = time.perf_counter() - started
        self.durations.setdefault(kind, []).append(elapsed)
        self.seconds[kind] += elapsed
        self.calls[kind] += 1
        self.rows[kind] += len(parameters) if executemany else 1

    def breakdown(self, wall: float) -> list[tuple[str, int, int, float, str]]:
        """(kind, calls, parameter sets, seconds, ms per call), slowest first, then Python."""
        kinds = [
            (kind, self.calls[kind], self.rows[kind], seconds, _per_call(self.durations[kind]))
            for kind, seconds in self.seconds.most_common()
        ]
        python = wall - sum(self.seconds.values())
        return [*kinds, ("Python outside the statements", 0, 0, python, "")]


def _per_call(durations: list[float]) -> str:
    """First, median and last call in ms: whether a statement slows down as the sweep goes."""
    if len(durations) < 3:
        return ""
    ms = [d * 1000 for d in durations]
    return (
        f"ms per call: first {ms[0]:.0f}, median {sorted(ms)[len(ms) // 2]:.0f}, last {ms[-1]:.0f}"
    )


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

    def breakdown(self) -> str:
        """Where the sweep's wall time went, statement kind by kind."""
        lines = [f"{self.backend} {self.phase}: {self.wall:.2f} s"]
        for kind, calls, rows, seconds, per_call in self.statements:
            counted = f"{calls:,} calls, {rows:,} parameter sets" if calls else ""
            lines.append(
                f"  {seconds:8.2f} s {seconds / self.wall:6.1%}  {kind:<32} {counted} {per_call}"
            )
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
            f"{label}: rules change (replace_rules: new version + UPDATE of every buyer's "
            f"next_review_at) took {update_seconds:.2f} s"
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


# --------------------------------------------------------------------------------------------
# cProfile summary

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
    stats = pstats.Stats(profile)
    entries: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(own for _, _, own, _, _ in entries.values())
    lines = [
        f"cProfile over the sweeps: wall {wall:.1f} s (profiled), {total:.1f} s attributed",
        "parts (cumulative s, database waits of their statements included):",
    ]
    for label, file_part, function in PARTS:
        cumulative = max(
            (
                value[3]
                for (filename, _, name), value in entries.items()
                if name == function and file_part in filename
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


async def postgres_settings(database_url: str) -> str:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            values = []
            for name in ("server_version", "shared_buffers", "work_mem", "synchronous_commit"):
                value = (await connection.execute(text(f"show {name}"))).scalar_one()
                values.append(f"{name}={value}")
            return ", ".join(values)
    finally:
        await engine.dispose()


def run_backend(
    backend: str, database_urls: dict[str, str], db_pid: int | None, args: argparse.Namespace
) -> tuple[list[SweepRow], list[str]]:
    """One database per review path, loaded with the same base; each swept by its path."""
    for review, url in database_urls.items():
        migrate(url, args.workdir / f"migrate-{backend}-{review}.log")
    urls = list(database_urls.values())
    print(
        f"[{backend}] generating and loading {args.customers:,} customers "
        f"into {len(urls)} database(s)",
        flush=True,
    )
    if backend == "postgres":
        summary = run_async(lambda: load_postgres(urls, args))
        settings = run_async(lambda: postgres_settings(urls[0]))
    else:
        summary = load_sqlite(urls, args)
        settings = "sqlite"
    stages = ", ".join(f"{stage} {n:,}" for stage, n in summary.stages.most_common())
    notes = [
        f"{backend}: {settings}",
        f"base: {summary.customers:,} customers ({stages}); {summary.repeat_buyers:,} repeat "
        f"buyers, {summary.scored:,} with scores, {summary.warnings:,} open warnings, "
        f"{summary.without_review:,} never due (prospects, churned one-time buyers), "
        f"{summary.due_in_a_day:,} due within a day of D",
        f"base: generated in {summary.generate_seconds:.1f} s (domain functions included), "
        f"loaded into {len(urls)} database(s) in {summary.load_seconds:.1f} s, "
        f"{'VACUUM ANALYZE' if backend == 'postgres' else 'ANALYZE'} "
        f"{summary.vacuum_seconds:.1f} s; sampled states that on_sweep at D would move: "
        f"{summary.not_fixed_points} (0 = consistent)",
    ]
    print("\n".join(notes), flush=True)
    rows: list[SweepRow] = []
    fingerprints: dict[str, str] = {}
    for review, url in database_urls.items():
        label = f"{backend} {review}"
        review_rows, review_notes, fingerprints[review] = run_async(
            lambda: run_sweeps(label, url, db_pid, args, review)  # noqa: B023
        )
        rows += review_rows
        notes += review_notes
    if len(set(fingerprints.values())) > 1:
        notes.append(f"{backend}: END STATES DIFFER between the review paths: {fingerprints}")
    else:
        notes.append(
            f"{backend}: end state (stages, review times, warnings, transitions, counts, "
            f"outbox) identical for {', '.join(fingerprints)}: {fingerprints.popitem()[1]}"
        )
    return rows, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=LifecycleSettings.model_fields["sweep_chunk_size"].default,
        help="customers per sweep transaction (the service's default)",
    )
    parser.add_argument("--sqlite", action="store_true", help="also on SQLite")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--review",
        default="per_customer,arrays",
        help="the sweep's review paths to compare, each on its own copy of the base",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the sweeps")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy the logs to DIR")
    args = parser.parse_args()
    install_termination_handlers()

    print("# lifecycle-service: the aging sweep")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    print("command:", " ".join(["python", *sys.argv]))
    fingerprint = source_fingerprint()
    print(f"sources (sha256 of crm_shared + lifecycle_service *.py): {fingerprint}")
    print(
        f"state date D = {STATE_DATE:%Y-%m-%d %H:%M} UTC; daily sweep at D + 1 day; "
        f"rules change and full sweep at D + 1 day + 1 hour; chunk size {args.chunk_size:,}",
        flush=True,
    )
    reviews: list[Review] = [r for r in ("per_customer", "arrays") if r in args.review.split(",")]
    args.workdir = Path(tempfile.mkdtemp(prefix="bench-lifecycle-sweep-"))
    rows: list[SweepRow] = []
    notes: list[str] = []
    try:
        if not args.no_postgres:
            with embedded_postgres() as server:
                urls = {
                    review: create_postgres_database(server, f"bench_lifecycle_sweep_{review}")
                    for review in reviews
                }
                backend_rows, backend_notes = run_backend("postgres", urls, server.pid(), args)
                rows += backend_rows
                notes += backend_notes
        if args.sqlite:
            urls = {r: sqlite_url(args.workdir / f"lifecycle-{r}.db") for r in reviews}
            backend_rows, backend_notes = run_backend("sqlite", urls, None, args)
            rows += backend_rows
            notes += backend_notes
    finally:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for log in args.workdir.glob("*.log"):
                shutil.copy(log, args.keep / log.name)
        shutil.rmtree(args.workdir, ignore_errors=True)

    if source_fingerprint() != fingerprint:
        print(f"WARNING: the sources changed during the run (now {source_fingerprint()})")
    print()
    print(format_table(HEADERS, [row.cells() for row in rows]))
    print()
    for note in notes:
        print(note)
    print()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"goal: a sweep over 1,000,000 customers in under {GOAL_SECONDS:.0f} s on PostgreSQL. "
        "due = customers with next_review_at <= as_of before the sweep; seconds = the sweep "
        "call's wall time (lock, rules, chunks, sweep_runs row); customers/s = reviewed / "
        "seconds; process CPU = this process (the sweep's Python and its driver) over the "
        "sweep, db CPU = the PostgreSQL server's process tree (100% = one core); RSS = this "
        "process, before the sweep and at its peak (50 ms samples). "
        f"Process peak RSS over the whole run (ru_maxrss, generation included): {peak:,.0f} MiB."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
