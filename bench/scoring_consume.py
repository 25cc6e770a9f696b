"""Scoring-service: order events consumed per second, on SQLite and PostgreSQL, with a bare ceiling.

The product's goal is 10,000 order events per second. Per backend, on a fresh embedded broker
(so `crm.orders` starts empty) and a fresh, migrated database:

  1. `--events` (50,000) `order.placed` events for `--customers` (10,000) customers are made
     (acquisition spread over one year, repeat buyers with Gamma-distributed purchase rates,
     one to three order lines, all in USD), sorted by time, and the first half is published
     to `crm.orders` (key = customer id) before the service starts.
  2. Phase "ledger only": scoring-service starts as a real process
     (`python -m uvicorn --factory scoring_service.app:create_app`, after
     `python -m scoring_service.migrate`); the clock starts when GET /healthz answers and stops
     when `select count(*) from purchases` (polled every 0.2 s, read-only, from this process)
     reaches the first half. No model exists yet, so each batch only writes the ledger.
  3. POST /v1/models/fit (admin key) as of the last event of the first half; the outbox that
     re-score filled is left to drain; the service is stopped.
  4. The second half is published; a bare aiokafka consumer (crm_shared.create_consumer, the
     same timeouts and batch size as the service, a fresh group, doing nothing with the records)
     reads the whole topic: the broker pass-through ceiling, measured while the service is down.
  5. Phase "with model": the service starts again and consumes the second half; now every
     batch also re-scores the customers it touched (load their ledger, score, upsert, outbox).
     Where the service queues re-scores in `pending_rescores` instead, the phase also waits
     until that table is empty and reports when.

Each phase stops at `--phase-timeout` (180 s) and then reports the rate so far. The table shows
events/s from healthy (including the consumer group join) and a steady rate (from the first
poll that saw a purchase to the end), the CPU used by the service, the database and the broker
(100% = one core), and the bare consumer's steady rate. `--py-spy DIR` records every phase
with py-spy (collapsed stacks; this slows the service, so use it on a separate run) and prints
where the samples fall. Every process started here is stopped on exit, on Ctrl-C and on error.

    python bench/scoring_consume.py [--events 50000] [--customers 10000]
        [--backends sqlite,postgres] [--phase-timeout 180] [--seed 1] [--py-spy DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from _support import (
    PYTHON,
    MachineCpu,
    ServerProcess,
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
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from crm_shared import API_KEY_HEADER, Scope, create_consumer, ensure_topics, generate_api_key
from crm_shared.contracts import Money, OrderLine, OrderPlaced, Topic, build_event, encode_event
from crm_shared.testing import EmbeddedBroker

GOAL_EVENTS_PER_SECOND = 10_000
SCORING_APP = "scoring_service.app:create_app"
SOURCE = "/bench/shop"
PARTITIONS = 6  # ServiceSettings.kafka_topic_partitions' default: what the service would create
BATCH_SIZE = 500  # ServiceSettings.kafka_consumer_batch_size' default
SESSION_TIMEOUT_MS = 6_000
REBALANCE_TIMEOUT_MS = 2_000
POLL_SECONDS = 0.2
YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_SECONDS = 365 * 86_400
OUR_SETTINGS = {
    "SCORING_DATABASE_URL",
    "SCORING_KAFKA_BOOTSTRAP_SERVERS",
    "SCORING_API_KEYS",
    "SCORING_ENVIRONMENT",
    "SCORING_REFIT_INTERVAL_SECONDS",
    "SCORING_RESCORE_INTERVAL_SECONDS",
    "SCORING_LOG_LEVEL",
    "SCORING_KAFKA_SESSION_TIMEOUT_MS",
    "SCORING_KAFKA_REBALANCE_TIMEOUT_MS",
}

# --------------------------------------------------------------------------------------------
# Order events


@dataclass(frozen=True)
class Message:
    """One Kafka record to publish: key = customer id, value = the encoded CloudEvent."""

    key: bytes
    value: bytes
    time: datetime


def _catalogue(rng: random.Random, size: int = 300) -> list[tuple[str, str, Decimal]]:
    products = []
    for n in range(size):
        price = Decimal(f"{max(rng.lognormvariate(3.2, 0.8), 1.0):.2f}")
        products.append((f"SKU-{n:05d}", f"Product {n}", price))
    return products


def generate_orders(events: int, customers: int, seed: int) -> list[OrderPlaced]:
    """`events` orders of `customers` customers over one year, sorted by time.

    Each customer is acquired at a uniform moment of the year (their first order, when there
    are at least as many events as customers) and buys again at a Gamma-distributed rate
    until the year ends, so late customers have fewer repeat orders and a few heavy buyers
    have many.
    """
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(customers)]
    acquired = [rng.uniform(0, YEAR_SECONDS * 0.97) for _ in range(customers)]
    rates = [rng.gammavariate(0.6, 1.0) for _ in range(customers)]
    buyers = min(events, customers)
    counts = [1 if i < buyers else 0 for i in range(customers)]
    weights = [rate * (YEAR_SECONDS - start) for rate, start in zip(rates, acquired, strict=True)]
    for i in rng.choices(range(customers), weights=weights, k=events - buyers):
        counts[i] += 1
    moments: list[tuple[float, int]] = []
    for i, count in enumerate(counts):
        if count:
            moments.append((acquired[i], i))
            moments.extend((rng.uniform(acquired[i], YEAR_SECONDS), i) for _ in range(count - 1))
    moments.sort()
    products = _catalogue(rng)
    orders = []
    for n, (offset, i) in enumerate(moments, start=1):
        lines = []
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            sku, name, price = rng.choice(products)
            quantity = rng.choice((1, 1, 1, 2, 3))
            lines.append(
                OrderLine(
                    sku=sku,
                    name=name,
                    quantity=quantity,
                    unit_price=Money(amount=price, currency="USD"),
                )
            )
        total = sum((line.unit_price.amount * line.quantity for line in lines), Decimal(0))
        orders.append(
            OrderPlaced(
                order_id=f"ord-{n:07d}",
                customer_id=ids[i],
                placed_at=YEAR_START + timedelta(seconds=int(offset)),
                total=Money(amount=total, currency="USD"),
                items=lines,
                shop_id=rng.choice(("shop-eu", "shop-us")),
                channel=rng.choice(("web", "web", "app", "store")),
            )
        )
    return orders


def encode_orders(orders: Sequence[OrderPlaced]) -> list[Message]:
    """The orders as `order.placed` CloudEvents with the order's time, ready to publish."""
    messages = []
    for order in orders:
        event = build_event(order, source=SOURCE, time=order.placed_at)
        messages.append(Message(event.subject.encode(), encode_event(event), order.placed_at))
    return messages


async def publish(bootstrap: str, messages: Sequence[Message]) -> float:
    """Publish to `crm.orders` (created with the service's partition count); seconds taken."""
    await ensure_topics(bootstrap, [Topic.ORDERS], partitions=PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id="bench-shop",
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks="all",
    )
    started = time.perf_counter()
    await producer.start()
    try:
        sent = [await producer.send(Topic.ORDERS, m.value, key=m.key) for m in messages]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# The bare consumer (ceiling)


@dataclass(frozen=True)
class BareResult:
    """What a do-nothing consumer in a fresh group read, and how fast."""

    events: int
    join_seconds: float  # start() until the first records arrived
    seconds: float  # start() until the last record arrived
    steady_rate: float  # records after the first batch / time from first to last batch


async def bare_consume(bootstrap: str, expected: int, timeout: float) -> BareResult:
    """Read `expected` records of `crm.orders` with the service's consumer settings."""
    consumer = create_consumer(
        [Topic.ORDERS],
        bootstrap_servers=bootstrap,
        group_id=f"bench-bare-{uuid.uuid4().hex[:12]}",
        client_id="bench-bare",
        session_timeout_ms=SESSION_TIMEOUT_MS,
        rebalance_timeout_ms=REBALANCE_TIMEOUT_MS,
    )
    started = time.perf_counter()
    await consumer.start()
    count = first_count = 0
    first_at: float | None = None
    last_at = started
    try:
        while count < expected and time.perf_counter() - started < timeout:
            batches = await consumer.getmany(timeout_ms=200, max_records=BATCH_SIZE)
            got = sum(len(records) for records in batches.values())
            if not got:
                continue
            last_at = time.perf_counter()
            if first_at is None:
                first_at, first_count = last_at, got
            count += got
    finally:
        await consumer.stop()
    if first_at is None:
        return BareResult(0, timeout, timeout, 0.0)
    steady = last_at - first_at
    return BareResult(
        events=count,
        join_seconds=first_at - started,
        seconds=last_at - started,
        steady_rate=(count - first_count) / steady if steady > 0 else 0.0,
    )


# --------------------------------------------------------------------------------------------
# The service and its database


def scoring_env(database_url: str, bootstrap: str, api_keys_json: str) -> dict[str, str]:
    """The environment of the scoring-service process and of its migration."""
    env = dict(os.environ)
    env.update(
        {
            "SCORING_DATABASE_URL": database_url,
            "SCORING_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SCORING_API_KEYS": api_keys_json,
            "SCORING_ENVIRONMENT": "test",
            "SCORING_REFIT_INTERVAL_SECONDS": "0",
            "SCORING_RESCORE_INTERVAL_SECONDS": "0",
            "SCORING_LOG_LEVEL": "WARNING",
            "SCORING_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "SCORING_KAFKA_REBALANCE_TIMEOUT_MS": str(REBALANCE_TIMEOUT_MS),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def inherited_scoring_settings() -> list[str]:
    """``SCORING_*`` variables set by the caller that the service inherits unchanged."""
    return sorted(
        f"{k}={v}"
        for k, v in os.environ.items()
        if k.startswith("SCORING_") and k not in OUR_SETTINGS
    )


def migrate(env: dict[str, str], log_path: Path) -> None:
    """``python -m scoring_service.migrate`` with the service's environment."""
    with log_path.open("ab") as log:
        result = subprocess.run(
            [PYTHON, "-m", "scoring_service.migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=180,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"migration failed (exit {result.returncode}):\n{tail(log_path)}")


async def count_rows(database_url: str, sql: str) -> int:
    """One read-only count from the service's database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text(sql))).scalar_one())
    finally:
        await engine.dispose()


async def wait_for_rescores(
    database_url: str, started: float, timeout: float
) -> tuple[float, int] | None:
    """Poll `pending_rescores` until it is empty: (seconds since `started`, rows left).

    None when the table does not exist (a version that re-scores inside the consumer's batch).
    """
    engine = create_async_engine(database_url)
    query = text("select count(*) from pending_rescores")
    try:
        while True:
            try:
                async with engine.connect() as connection:
                    pending = int((await connection.execute(query)).scalar_one())
            except DBAPIError:
                return None
            now = time.perf_counter()
            if pending == 0 or now - started >= timeout:
                return now - started, pending
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await engine.dispose()


async def wait_for_count(database_url: str, sql: str, target: int, timeout: float) -> float:
    """Poll until `sql` counts `target`; seconds waited (the timeout when it never did)."""
    engine = create_async_engine(database_url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < timeout:
            async with engine.connect() as connection:
                if int((await connection.execute(text(sql))).scalar_one()) == target:
                    break
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await engine.dispose()
    return time.perf_counter() - started


@dataclass(frozen=True)
class LedgerProgress:
    """How the purchase count grew during one phase."""

    start_count: int  # purchases when the service answered /healthz
    end_count: int
    seconds: float  # from healthy to the last poll
    first_seconds: float | None  # from healthy to the first poll that saw a new purchase
    steady_rate: float | None
    timed_out: bool
    rescored: tuple[float, int] | None = None  # healthy to `pending_rescores` empty, rows left


async def watch_ledger(
    database_url: str, target: int, started: float, timeout: float, server: ServerProcess
) -> LedgerProgress:
    """Poll `purchases` every 0.2 s until it holds `target` rows or `timeout` has passed."""
    engine = create_async_engine(database_url)
    query = text("select count(*) from purchases")
    start_count: int | None = None
    first: tuple[float, int] | None = None
    count, now = 0, time.perf_counter()
    try:
        while True:
            async with engine.connect() as connection:
                count = int((await connection.execute(query)).scalar_one())
            now = time.perf_counter()
            if start_count is None:
                start_count = count
            elif first is None and count > start_count:
                first = (now, count)
            if count >= target or now - started >= timeout:
                break
            process = server.process
            if process is None or process.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{tail(server.log_path)}")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await engine.dispose()
    assert start_count is not None
    steady: float | None = None
    if first is not None and now > first[0]:
        steady = (count - first[1]) / (now - first[0])
    return LedgerProgress(
        start_count=start_count,
        end_count=count,
        seconds=now - started,
        first_seconds=first[0] - started if first else None,
        steady_rate=steady,
        timed_out=count < target,
    )


def describe(progress: LedgerProgress) -> str:
    """One line about a phase's progress."""
    p = progress
    first = "never" if p.first_seconds is None else f"{p.first_seconds:.1f} s"
    steady = "-" if p.steady_rate is None else f"{p.steady_rate:,.0f}/s"
    limit = " (time limit)" if p.timed_out else ""
    rescored = ""
    if p.rescored is not None:
        rescored = f"; pending_rescores empty after {_rescored_cell(p.rescored)} s"
    return (
        f"purchases {p.start_count:,} at healthy -> {p.end_count:,} after {p.seconds:.1f} s"
        f"{limit}; first new purchase seen after {first}; steady {steady}{rescored}"
    )


def fit(base_url: str, api_key: str, as_of: datetime) -> dict[str, Any]:
    """POST /v1/models/fit; the stored model version."""
    response = httpx.post(
        f"{base_url}/v1/models/fit",
        json={"as_of": as_of.isoformat()},
        headers={API_KEY_HEADER: api_key},
        timeout=600,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def source_fingerprint() -> str:
    """A digest of the service's and crm_shared's Python sources (they may change between runs)."""
    import crm_shared
    import scoring_service

    digest = hashlib.sha256()
    for package in (crm_shared, scoring_service):
        root = Path(package.__file__ or "").parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# --------------------------------------------------------------------------------------------
# py-spy


@contextlib.contextmanager
def py_spy(pid: int, output: Path | None) -> Iterator[None]:
    """With an output path: sample `pid` with py-spy (collapsed stacks) while the block runs."""
    if output is None:
        yield
        return
    executable = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [executable, "record", "--pid", str(pid), "--rate", "100", "--format", "raw"]
    recorder = subprocess.Popen(
        [*command, "--nonblocking", "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            recorder.wait(30)
        except subprocess.TimeoutExpired:
            recorder.kill()
            recorder.wait()


# Where a sample's time goes: the first category (in this order) with a frame in the stack.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rescore: score_histories (numpy, worker thread)", ("score_histories ",)),
    ("rescore: load_ledger", ("load_ledger ",)),
    ("rescore: engagement_counts", ("engagement_counts ",)),
    ("rescore: store_scores (payloads, upsert, outbox)", ("store_scores ",)),
    ("rescore: other", ("rescore_customers ", "rescore_pending ", "drain_pending_rescores ")),
    ("ledger: queue re-scores", ("queue_rescores ",)),
    ("ledger: bulk batch apply", ("apply_ledger_batch ",)),
    ("ledger: per-event handler (session.get + flush)", ("record_placed ",)),
    ("batch finisher: other", ("finish ",)),
    ("decode_event (pydantic)", ("decode_event ",)),
    ("consumer batch: inbox select/insert, commit", ("_apply ",)),
    ("outbox relay", ("_outbox.py",)),
    ("aiokafka fetch/commit", ("aiokafka",)),
)


def _frame_name(frame: str) -> str:
    # py-spy's raw frames read "function (path/to/file.py:123)"; drop the line number.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def summarise_profile(path: Path, top: int = 15) -> str:
    """Category shares, and the functions with the most self and inclusive samples."""
    stacks: list[tuple[list[str], int]] = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            stack, _, samples = line.rpartition(" ")
            if stack and samples.isdigit():
                stacks.append((stack.split(";"), int(samples)))
    total = sum(samples for _, samples in stacks)
    if not total:
        return f"  (no samples in {path})"
    by_category: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        joined = ";".join(frames)
        category = next(
            (name for name, markers in CATEGORIES if any(m in joined for m in markers)),
            "other (event loop incl. uvloop C code and socket I/O, HTTP)",
        )
        by_category[category] += count
        own[_frame_name(frames[-1])] += count
        for name in {_frame_name(frame) for frame in frames}:
            inclusive[name] += count
    lines = [f"  {total:,} samples (100 Hz, active threads only) in {path}", "  by category:"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in by_category.most_common()]
    lines.append("  top self:")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("  top inclusive (project and library frames):")
    interesting = [
        (name, n)
        for name, n in inclusive.most_common()
        if not name.startswith(("<module>", "run (", "_run (", "run_forever", "_run_once"))
    ]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in interesting[: top * 2]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# One backend


def _rescored_cell(rescored: tuple[float, int] | None) -> str:
    if rescored is None:
        return "-"
    seconds, left = rescored
    return f"{seconds:.1f}" + (f" ({left:,} left)" if left else "")


@dataclass(frozen=True)
class PhaseRow:
    backend: str
    phase: str
    already: int  # purchases in the ledger from earlier phases
    progress: LedgerProgress
    service_cpu: float
    db_cpu: float | None
    broker_cpu: float
    machine_busy: float
    bare: BareResult
    sources: str

    def cells(self) -> list[object]:
        p = self.progress
        consumed = p.end_count - p.start_count
        rate = consumed / p.seconds if p.seconds > 0 else 0.0
        label = self.phase + (" (time limit)" if p.timed_out else "")
        return [
            self.backend,
            label,
            consumed,
            p.start_count - self.already,
            round(p.seconds, 1),
            round(rate),
            "-" if p.first_seconds is None else round(p.first_seconds, 1),
            "-" if p.steady_rate is None else round(p.steady_rate),
            _rescored_cell(p.rescored),
            f"{self.service_cpu:.0%}",
            "-" if self.db_cpu is None else f"{self.db_cpu:.0%}",
            f"{self.broker_cpu:.0%}",
            f"{self.machine_busy:.0%}",
            round(self.bare.steady_rate),
            f"{rate / self.bare.steady_rate:.1%}" if self.bare.steady_rate else "-",
            f"{rate / GOAL_EVENTS_PER_SECOND:.1%}",
            self.sources,
        ]


HEADERS = [
    "backend",
    "phase",
    "events",
    "before healthy",
    "seconds",
    "events/s",
    "1st purchase s",
    "steady events/s",
    "re-scored s",
    "service CPU",
    "db CPU",
    "broker CPU",
    "machine busy",
    "bare consumer events/s",
    "vs bare",
    "vs goal",
    "sources",
]


@dataclass(frozen=True)
class BenchConfig:
    first: list[Message]
    second: list[Message]
    api_key: str
    api_keys_json: str
    workdir: Path
    phase_timeout: float
    profile_dir: Path | None


def run_phase(
    backend: str,
    phase: str,
    server: ServerProcess,
    database_url: str,
    target: int,
    config: BenchConfig,
    cpu_pids: dict[str, int | None],
    *,
    wait_rescored: bool = False,
) -> tuple[LedgerProgress, dict[str, float | None], str]:
    """Start the service, time it from healthy to `target` purchases, leave it running."""
    sources = source_fingerprint()  # what the service process is about to import
    server.start(timeout=120)
    started = time.perf_counter()
    cpu_before = {
        name: process_tree_cpu_seconds(pid) if pid else None for name, pid in cpu_pids.items()
    }
    cpu_before["service"] = process_tree_cpu_seconds(server.pid)
    machine = MachineCpu()
    profile = None
    if config.profile_dir is not None:
        profile = config.profile_dir / f"{backend}-{phase.replace(' ', '-')}.txt"
    with py_spy(server.pid, profile):
        progress = run_async(
            lambda: watch_ledger(database_url, target, started, config.phase_timeout, server)
        )
        if wait_rescored and not progress.timed_out:
            rescored = run_async(
                lambda: wait_for_rescores(database_url, started, config.phase_timeout)
            )
            progress = dataclasses.replace(progress, rescored=rescored)
    elapsed = time.perf_counter() - started
    cpu: dict[str, float | None] = {"machine": machine.busy_share()}
    pids = {**cpu_pids, "service": server.pid}
    for name, before in cpu_before.items():
        pid = pids[name]
        cpu[name] = (
            None
            if before is None or pid is None
            else (process_tree_cpu_seconds(pid) - before) / elapsed
        )
    if profile is not None:
        print(summarise_profile(profile), flush=True)
    return progress, cpu, sources


def run_backend(
    backend: str, database_url: str, postgres_pid: int | None, config: BenchConfig
) -> list[PhaseRow]:
    """Both phases and the bare consumer on one fresh broker and database."""
    half, total = len(config.first), len(config.first) + len(config.second)
    with contextlib.ExitStack() as stack:
        broker = EmbeddedBroker(log_path=config.workdir / f"broker-{backend}.log")
        stack.callback(broker.stop)
        bootstrap = broker.start()
        env = scoring_env(database_url, bootstrap, config.api_keys_json)
        migrate(env, config.workdir / f"migrate-{backend}.log")
        seconds = run_async(lambda: publish(bootstrap, config.first))
        print(f"[{backend}] published {half:,} events in {seconds:.1f} s", flush=True)
        server = ServerProcess(
            name=f"scoring-service ({backend})",
            factory=SCORING_APP,
            env=env,
            log_path=config.workdir / f"scoring-{backend}.log",
        )
        stack.callback(server.stop)
        cpu_pids = {"db": postgres_pid, "broker": broker.pid}

        ledger_only, cpu_a, sources_a = run_phase(
            backend, "ledger only", server, database_url, half, config, cpu_pids
        )
        print(f"[{backend}] ledger only: {describe(ledger_only)}", flush=True)

        as_of = config.first[-1].time + timedelta(seconds=1)
        started = time.perf_counter()
        model = fit(server.base_url, config.api_key, as_of)
        fit_wall = time.perf_counter() - started
        drain = run_async(
            lambda: wait_for_count(
                database_url, "select count(*) from outbox where sent_at is null", 0, 120
            )
        )
        print(
            f"[{backend}] fit as of {as_of:%Y-%m-%d}: {model['customers']:,} customers, "
            f"fit_seconds {model['fit_seconds']}, request {fit_wall:.1f} s; "
            f"outbox drained in {drain:.1f} s",
            flush=True,
        )
        server.stop()

        seconds = run_async(lambda: publish(bootstrap, config.second))
        print(f"[{backend}] published {len(config.second):,} events in {seconds:.1f} s")
        bare = run_async(lambda: bare_consume(bootstrap, total, config.phase_timeout))
        print(
            f"[{backend}] bare consumer: {bare.events:,} records, group join + first fetch "
            f"{bare.join_seconds:.1f} s, all in {bare.seconds:.1f} s "
            f"({bare.events / bare.seconds:,.0f}/s incl. join), "
            f"steady {bare.steady_rate:,.0f}/s",
            flush=True,
        )

        with_model, cpu_b, sources_b = run_phase(
            backend, "with model", server, database_url, total, config, cpu_pids, wait_rescored=True
        )
        print(f"[{backend}] with model: {describe(with_model)}", flush=True)
        scores = run_async(lambda: count_rows(database_url, "select count(*) from scores"))
        unsent = run_async(
            lambda: count_rows(database_url, "select count(*) from outbox where sent_at is null")
        )
        print(f"[{backend}] scores stored {scores:,}; outbox unsent at the end {unsent:,}")
        server.stop()

    return [
        PhaseRow(
            backend,
            phase,
            already,
            progress,
            service_cpu=cpu["service"] or 0.0,
            db_cpu=cpu["db"],
            broker_cpu=cpu["broker"] or 0.0,
            machine_busy=cpu["machine"] or 0.0,
            bare=bare,
            sources=sources,
        )
        for phase, already, progress, cpu, sources in (
            ("ledger only", 0, ledger_only, cpu_a, sources_a),
            ("with model", ledger_only.end_count, with_model, cpu_b, sources_b),
        )
    ]


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="order events in all")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres")
    parser.add_argument(
        "--phase-timeout", type=float, default=180.0, help="longest a phase may take, s"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--py-spy", type=Path, metavar="DIR", help="record every phase with py-spy into DIR"
    )
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy the logs to DIR")
    args = parser.parse_args()
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    if set(backends) - {"sqlite", "postgres"} or not backends:
        parser.error("--backends takes sqlite and/or postgres")
    if args.events < 2:
        parser.error("--events must be at least 2")
    install_termination_handlers()

    print("# scoring-service: order events consumed per second")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    print("command:", " ".join(["python", *sys.argv]))
    inherited = inherited_scoring_settings()
    if inherited:
        print("inherited settings:", " ".join(inherited))
    print(flush=True)

    fingerprint = source_fingerprint()
    print(f"sources (sha256 of crm_shared + scoring_service *.py): {fingerprint}")
    started = time.perf_counter()
    orders = generate_orders(args.events, args.customers, args.seed)
    messages = encode_orders(orders)
    half = len(messages) // 2
    distinct = len({order.customer_id for order in orders})
    size = sum(len(m.value) for m in messages) / len(messages)
    print(
        f"{len(messages):,} order.placed events of {distinct:,} customers, "
        f"{orders[0].placed_at:%Y-%m-%d} .. {orders[-1].placed_at:%Y-%m-%d}, "
        f"{size:,.0f} bytes each on average; made in {time.perf_counter() - started:.1f} s; "
        f"first half up to {messages[half - 1].time:%Y-%m-%d %H:%M}",
        flush=True,
    )
    key, record = generate_api_key("bench", [Scope.ADMIN])
    workdir = Path(tempfile.mkdtemp(prefix="bench-scoring-consume-"))
    if args.py_spy is not None:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    config = BenchConfig(
        first=messages[:half],
        second=messages[half:],
        api_key=key,
        api_keys_json=json.dumps([record.model_dump(mode="json")]),
        workdir=workdir,
        phase_timeout=args.phase_timeout,
        profile_dir=args.py_spy,
    )
    rows: list[PhaseRow] = []
    try:
        for backend in backends:
            if backend == "sqlite":
                rows += run_backend(backend, sqlite_url(workdir / "scoring.db"), None, config)
            else:
                with embedded_postgres() as server:
                    url = create_postgres_database(server, "bench_scoring_consume")
                    rows += run_backend(backend, url, server.pid(), config)
    finally:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for log in workdir.glob("*.log"):
                shutil.copy(log, args.keep / log.name)
        shutil.rmtree(workdir, ignore_errors=True)

    if source_fingerprint() != fingerprint:
        print(f"WARNING: the sources changed during the run (now {source_fingerprint()})")
    print()
    print(format_table(HEADERS, [row.cells() for row in rows]))
    print()
    print(
        f"goal {GOAL_EVENTS_PER_SECOND:,} events/s. events = purchases added from GET /healthz "
        "answering to the last poll (every 0.2 s) of `purchases`; before healthy = purchases the "
        "phase had added before /healthz first answered (not counted); events/s = events / "
        "seconds (includes the consumer group join); 1st purchase s = healthy to the first poll "
        "that saw a new purchase; steady events/s = from "
        "that poll to the end; re-scored s = healthy to `pending_rescores` empty, where the "
        "service queues re-scores instead of scoring inside the consumer's batch (- = no such "
        "table). CPU: share of one core over the phase (tree of each process); "
        "machine busy: share of all cores busy, every process on the machine included. "
        "bare consumer = a do-nothing aiokafka consumer in a fresh group, same settings, reading "
        f"all {args.events:,} records while the service was down (steady rate, join excluded). "
        "sources: digest of the crm_shared and scoring_service sources the service started with."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
