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
        [--base-cache DIR]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from lib.backends import create_postgres_database, embedded_postgres
from lib.processes import (
    install_termination_handlers,
    migrate_service,
    run_async,
    sqlite_url,
)
from lib.report import format_table, machine_summary, sources_digest
from lib.sql_timing import postgres_settings
from lib.sweep_base import STATE_DATE, load_postgres, load_sqlite
from lib.sweep_run import GOAL_SECONDS, HEADERS, SweepRow, run_sweeps

from lifecycle_service.settings import LifecycleSettings
from lifecycle_service.workflows.sweep import Review

# --------------------------------------------------------------------------------------------
# The customer base


# --------------------------------------------------------------------------------------------
# Loading


# --------------------------------------------------------------------------------------------
# Sweeps, through the service's own code


# --------------------------------------------------------------------------------------------
# cProfile summary


# --------------------------------------------------------------------------------------------


def run_backend(
    backend: str, database_urls: dict[str, str], db_pid: int | None, args: argparse.Namespace
) -> tuple[list[SweepRow], list[str]]:
    """One database per review path, loaded with the same base; each swept by its path."""
    for review, url in database_urls.items():
        migrate_service(
            "lifecycle_service", "LIFECYCLE_", url, args.workdir / f"migrate-{backend}-{review}.log"
        )
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
    parser.add_argument(
        "--base-cache",
        type=Path,
        metavar="DIR",
        help="PostgreSQL: keep the generated base's records in DIR and reuse them in later runs",
    )
    parser.add_argument("--keep", type=Path, metavar="DIR", help="copy the logs to DIR")
    args = parser.parse_args()
    install_termination_handlers()

    print("# lifecycle-service: the aging sweep")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    print("command:", " ".join(["python", *sys.argv]))
    fingerprint = sources_digest("crm_shared", "lifecycle_service")
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

    now = sources_digest("crm_shared", "lifecycle_service")
    if now != fingerprint:
        print(f"WARNING: the sources changed during the run (now {now})")
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
