"""Lifecycle-service: order events applied per second, on SQLite and PostgreSQL, and a ceiling.

Per backend, on a fresh embedded broker (so `crm.orders` starts empty) and a fresh, migrated
database (``python -m lifecycle_service.migrate``):

  1. `--events` (50,000) `order.placed` events for `--customers` (10,000) customers, made and
     encoded exactly as ``scoring_consume.py`` makes them (acquisition over one year, repeat
     buyers at Gamma-distributed rates, one to three order lines, sorted by time), are all
     published to `crm.orders` (key = customer id) before the service starts.
  2. A bare aiokafka consumer (``crm_shared.create_consumer``, the service's timeouts and
     batch size, a fresh group, doing nothing with the records) reads the whole topic: the
     broker pass-through ceiling, measured while the service is not running.
  3. lifecycle-service starts as a real process
     (``python -m uvicorn --factory lifecycle_service.app:create_app``, Kafka on, the scheduled
     sweep off); the clock starts when GET /healthz answers and stops when
     ``select count(*) from lifecycle_orders`` (polled every 0.2 s, read-only, from this
     process) reaches the events published: every order has then been applied (customer
     loaded or created, stage machine, warnings, transitions, counts, outbox) and committed.
  4. The run then waits for the outbox relay to publish every ``lifecycle.stage_changed`` and
     ``churn.warning`` event the batches staged, and reports when the outbox was empty.

Each phase stops at `--phase-timeout` (180 s) and reports the rate so far. The table shows
events/s from healthy (the consumer group join included) and a steady rate (from the first poll
that saw an order to the end), the CPU of the service, the database and the broker (100% = one
core), the bare consumer's steady rate, and what the service stored. `--py-spy DIR` records
the phase with py-spy (collapsed stacks; slower, so use a separate run) and prints where the
samples fall. Every process started here is stopped on exit, on Ctrl-C and on error.

    python bench/lifecycle_consume.py [--events 50000] [--customers 10000]
        [--backends sqlite,postgres] [--phase-timeout 180] [--seed 1] [--py-spy DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lib.backends import create_postgres_database, embedded_postgres
from lib.lifecycle_progress import (
    DRAIN_TIMEOUT,
    Progress,
    stored_counts,
    wait_for_drain,
    watch_applied,
)
from lib.orders import BareResult, Message, bare_consume, encode_orders, generate_orders, publish
from lib.processes import (
    MachineCpu,
    ServerProcess,
    inherited_settings,
    install_termination_handlers,
    process_tree_cpu_seconds,
    run_async,
    run_migration,
    sqlite_url,
)
from lib.py_spy import py_spy, summarise_samples
from lib.report import format_table, machine_summary, sources_digest

from crm_shared.testing import EmbeddedBroker

LIFECYCLE_APP = "lifecycle_service.app:create_app"
SESSION_TIMEOUT_MS = 6_000
REBALANCE_TIMEOUT_MS = 2_000
OUR_SETTINGS = {
    "LIFECYCLE_DATABASE_URL",
    "LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS",
    "LIFECYCLE_ENVIRONMENT",
    "LIFECYCLE_SWEEP_INTERVAL_SECONDS",
    "LIFECYCLE_LOG_LEVEL",
    "LIFECYCLE_KAFKA_SESSION_TIMEOUT_MS",
    "LIFECYCLE_KAFKA_REBALANCE_TIMEOUT_MS",
}

# --------------------------------------------------------------------------------------------
# The service and its database


def lifecycle_env(database_url: str, bootstrap: str) -> dict[str, str]:
    """The environment of the lifecycle-service process and of its migration."""
    env = dict(os.environ)
    env.update(
        {
            "LIFECYCLE_DATABASE_URL": database_url,
            "LIFECYCLE_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "LIFECYCLE_ENVIRONMENT": "test",
            "LIFECYCLE_SWEEP_INTERVAL_SECONDS": "0",
            "LIFECYCLE_LOG_LEVEL": "WARNING",
            "LIFECYCLE_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "LIFECYCLE_KAFKA_REBALANCE_TIMEOUT_MS": str(REBALANCE_TIMEOUT_MS),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def inherited_lifecycle_settings() -> list[str]:
    """``LIFECYCLE_*`` variables set by the caller that the service inherits unchanged."""
    return inherited_settings("LIFECYCLE_", OUR_SETTINGS)


def migrate(env: dict[str, str], log_path: Path) -> None:
    """``python -m lifecycle_service.migrate`` with the service's environment."""
    run_migration("lifecycle_service", env, log_path)


def source_fingerprint() -> str:
    """A digest of crm_shared's and the service's Python sources (they may change meanwhile)."""
    return sources_digest("crm_shared", "lifecycle_service")


# --------------------------------------------------------------------------------------------
# py-spy summary

# Where a sample's time goes: the first category (in this order) with a frame in the stack.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("batch: load customers + open warnings", ("load_customers ",)),
    ("batch: load orders", ("BatchOrders.load ",)),
    ("batch: store customers (upsert)", ("CustomerChanges._store_customers ",)),
    ("batch: store transitions", ("CustomerChanges._store_transitions ",)),
    ("batch: store warnings", ("CustomerChanges._store_warnings ",)),
    ("batch: store counts", ("CustomerChanges._store_counts ",)),
    ("batch: build events + outbox insert", ("CustomerChanges._events ", "add_many_to_outbox ")),
    ("batch: store orders", ("BatchOrders.store ",)),
    ("batch: domain (orders, stage machine, warnings)", ("_Batch.apply ",)),
    ("batch: other", ("apply_events ",)),
    ("decode_event (pydantic)", ("decode_event ",)),
    ("consumer batch: inbox select/insert, commit", ("EventConsumer._apply ",)),
    ("outbox relay", ("OutboxRelay.",)),
    ("aiokafka fetch/commit", ("aiokafka",)),
)


def summarise_profile(path: Path, top: int = 15) -> str:
    """Category shares and the functions with the most samples."""
    return summarise_samples(path, CATEGORIES, top, inclusive=False)


# --------------------------------------------------------------------------------------------
# One backend


@dataclass(frozen=True)
class Row:
    backend: str
    events: int
    progress: Progress
    cpu: dict[str, float | None]
    bare: BareResult
    stored: dict[str, int]
    sources: str

    def cells(self) -> list[object]:
        p = self.progress
        consumed = p.end_count - p.start_count
        rate = consumed / p.seconds if p.seconds > 0 else 0.0
        drained = "-" if p.drained_seconds is None else f"{p.drained_seconds:.1f}"
        if p.unsent:
            drained += f" ({p.unsent:,} left)"

        def share(name: str) -> str:
            value = self.cpu.get(name)
            return "-" if value is None else f"{value:.0%}"

        return [
            self.backend + (" (time limit)" if p.timed_out else ""),
            consumed,
            p.start_count,
            round(p.seconds, 1),
            round(rate),
            "-" if p.first_seconds is None else round(p.first_seconds, 1),
            "-" if p.steady_rate is None else round(p.steady_rate),
            drained,
            share("service"),
            share("db"),
            share("broker"),
            share("machine"),
            round(self.bare.steady_rate),
            f"{rate / self.bare.steady_rate:.1%}" if self.bare.steady_rate else "-",
            self.stored["customers"],
            self.stored["transitions"],
            self.stored["warnings"],
            self.stored["outbox"],
            self.sources,
        ]


HEADERS = [
    "backend",
    "events",
    "before healthy",
    "seconds",
    "events/s",
    "1st order s",
    "steady events/s",
    "outbox empty s",
    "service CPU",
    "db CPU",
    "broker CPU",
    "machine busy",
    "bare consumer events/s",
    "vs bare",
    "customers",
    "transitions",
    "warnings",
    "outbox events",
    "sources",
]


def run_backend(
    backend: str,
    database_url: str,
    postgres_pid: int | None,
    messages: list[Message],
    args: argparse.Namespace,
) -> Row:
    """Publish, read with the bare consumer, then time the service on one fresh broker and db."""
    with contextlib.ExitStack() as stack:
        broker = EmbeddedBroker(log_path=args.workdir / f"broker-{backend}.log")
        stack.callback(broker.stop)
        bootstrap = broker.start()
        env = lifecycle_env(database_url, bootstrap)
        migrate(env, args.workdir / f"migrate-{backend}.log")
        seconds = run_async(lambda: publish(bootstrap, messages))
        print(f"[{backend}] published {len(messages):,} events in {seconds:.1f} s", flush=True)
        bare = run_async(lambda: bare_consume(bootstrap, len(messages), args.phase_timeout))
        print(
            f"[{backend}] bare consumer: {bare.events:,} records, group join + first fetch "
            f"{bare.join_seconds:.1f} s, all in {bare.seconds:.1f} s, "
            f"steady {bare.steady_rate:,.0f}/s",
            flush=True,
        )
        server = ServerProcess(
            name=f"lifecycle-service ({backend})",
            factory=LIFECYCLE_APP,
            env=env,
            log_path=args.workdir / f"lifecycle-{backend}.log",
        )
        stack.callback(server.stop)
        sources = source_fingerprint()
        server.start(timeout=120)
        started = time.perf_counter()
        pids = {"db": postgres_pid, "broker": broker.pid, "service": server.pid}
        cpu_before = {
            name: process_tree_cpu_seconds(pid) if pid else None for name, pid in pids.items()
        }
        machine = MachineCpu()
        profile = args.py_spy / f"lifecycle-{backend}.txt" if args.py_spy else None
        with py_spy(server.pid, profile):
            progress = run_async(
                lambda: watch_applied(
                    database_url, len(messages), started, args.phase_timeout, server
                )
            )
        elapsed = time.perf_counter() - started
        cpu: dict[str, float | None] = {"machine": machine.busy_share()}
        for name, before in cpu_before.items():
            pid = pids[name]
            cpu[name] = (
                None
                if before is None or pid is None
                else (process_tree_cpu_seconds(pid) - before) / elapsed
            )
        drain_limit = time.perf_counter() - started + DRAIN_TIMEOUT
        drained, unsent = run_async(lambda: wait_for_drain(database_url, started, drain_limit))
        progress = dataclasses.replace(progress, drained_seconds=drained, unsent=unsent)
        stored = run_async(lambda: stored_counts(database_url))
        print(
            f"[{backend}] applied {progress.end_count:,} orders after {progress.seconds:.1f} s"
            f"{' (time limit)' if progress.timed_out else ''}; outbox empty after "
            f"{drained:.1f} s ({unsent:,} left); stored {stored}",
            flush=True,
        )
        if profile is not None:
            print(summarise_profile(profile), flush=True)
        server.stop()
    return Row(backend, len(messages), progress, cpu, bare, stored, sources)


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000, help="order events in all")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres")
    parser.add_argument(
        "--phase-timeout", type=float, default=180.0, help="longest the phase may take, s"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--py-spy", type=Path, metavar="DIR", help="record the service with py-spy into DIR"
    )
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy the logs to DIR")
    args = parser.parse_args()
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]
    if set(backends) - {"sqlite", "postgres"} or not backends:
        parser.error("--backends takes sqlite and/or postgres")
    if args.events < 1:
        parser.error("--events must be at least 1")
    install_termination_handlers()

    print("# lifecycle-service: order events applied per second")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    print("command:", " ".join(["python", *sys.argv]))
    inherited = inherited_lifecycle_settings()
    if inherited:
        print("inherited settings:", " ".join(inherited))
    fingerprint = source_fingerprint()
    print(f"sources (sha256 of crm_shared + lifecycle_service *.py): {fingerprint}", flush=True)

    started = time.perf_counter()
    orders = generate_orders(args.events, args.customers, args.seed)
    messages = encode_orders(orders)
    distinct = len({order.customer_id for order in orders})
    size = sum(len(m.value) for m in messages) / len(messages)
    print(
        f"{len(messages):,} order.placed events of {distinct:,} customers, "
        f"{orders[0].placed_at:%Y-%m-%d} .. {orders[-1].placed_at:%Y-%m-%d}, "
        f"{size:,.0f} bytes each on average; made in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    args.workdir = Path(tempfile.mkdtemp(prefix="bench-lifecycle-consume-"))
    if args.py_spy is not None:
        args.py_spy.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    try:
        for backend in backends:
            if backend == "sqlite":
                url = sqlite_url(args.workdir / "lifecycle.db")
                rows.append(run_backend(backend, url, None, messages, args))
            else:
                with embedded_postgres() as server:
                    url = create_postgres_database(server, "bench_lifecycle_consume")
                    rows.append(run_backend(backend, url, server.pid(), messages, args))
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
    print(
        "events = orders applied (rows in lifecycle_orders) from GET /healthz answering to the "
        "last poll (every 0.2 s); before healthy = already applied by then (not counted); "
        "events/s = events / seconds (includes the consumer group join); 1st order s = healthy "
        "to the first poll that saw an applied order; steady events/s = from that poll to the "
        "end; outbox empty s = healthy until every staged lifecycle event was published. "
        "CPU: share of one core over the phase (tree of each process); machine busy: share of "
        "all cores busy, every process on the machine included. bare consumer = a do-nothing "
        f"aiokafka consumer in a fresh group, same settings, reading all {args.events:,} "
        "records while the service was down (steady rate, join excluded). customers, "
        "transitions, warnings, outbox events: rows stored at the end. sources: digest of the "
        "crm_shared and lifecycle_service sources the service started with."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
