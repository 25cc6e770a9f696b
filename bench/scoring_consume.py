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
import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from lib.backends import create_postgres_database, embedded_postgres
from lib.orders import (
    Message,
    bare_consume,
    encode_orders,
    generate_orders,
    publish,
)
from lib.processes import (
    MachineCpu,
    ServerProcess,
    install_termination_handlers,
    process_tree_cpu_seconds,
    run_async,
    sqlite_url,
)
from lib.py_spy import py_spy, summarise_samples
from lib.report import format_table, machine_summary, sources_digest
from lib.row_counts import count_rows, wait_for_count
from lib.scoring_process import SCORING_APP, inherited_scoring_settings, migrate, scoring_env
from lib.scoring_progress import (
    GOAL_EVENTS_PER_SECOND,
    HEADERS,
    LedgerProgress,
    PhaseRow,
    describe,
    fit,
    wait_for_rescores,
    watch_ledger,
)

from crm_shared import Scope, generate_api_key
from crm_shared.testing import EmbeddedBroker

# --------------------------------------------------------------------------------------------
# Order events


# --------------------------------------------------------------------------------------------
# The bare consumer (ceiling)


# --------------------------------------------------------------------------------------------
# The service and its database


def source_fingerprint() -> str:
    """A digest of crm_shared's and the service's Python sources (they may change meanwhile)."""
    return sources_digest("crm_shared", "scoring_service")


# --------------------------------------------------------------------------------------------
# py-spy


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


def summarise_profile(path: Path, top: int = 15) -> str:
    """Category shares and the functions with the most samples."""
    return summarise_samples(path, CATEGORIES, top)


# --------------------------------------------------------------------------------------------
# One backend


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
