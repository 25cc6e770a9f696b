"""Profile reads per second and latency: ``GET /v1/customers/{id}`` next to a bare FastAPI app.

Starts profile-service (SQLite, and with ``--postgres`` also on the embedded PostgreSQL) and a
bare FastAPI app (bench/lib/bare_app.py) as uvicorn processes, seeds customers through the import
endpoint, then sends the same fixed number of requests at the same concurrency to each from
one httpx.AsyncClient per target (HTTP/1.1, keep-alive) in this process. The ratio
profile/bare is the number to watch: both are measured in the same run, on the same machine
state, with the same client.

    python bench/profile_http.py [--customers 1000] [--requests 20000] [--concurrency 32]
                                 [--rounds 1] [--postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import httpx
from lib.backends import (
    PROFILE_APP,
    create_postgres_database,
    embedded_postgres,
    make_api_key,
    profile_env,
)
from lib.http_client import cache_missing_sniffio
from lib.http_load import HEADERS, Measurement, Target, measure, seed, summary
from lib.processes import (
    BENCH_DIR,
    ServerProcess,
    install_termination_handlers,
    run_async,
    run_main,
    run_migrations,
    sqlite_url,
    tail,
)
from lib.report import format_table, percentile, print_header

BARE_APP = "lib.bare_app:create_app"
SEED_TIMEOUT = 600.0  # the seeding import answers once every row is stored (~150 rows/s here)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000, help="customers to seed")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per target")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured requests first")
    parser.add_argument("--rounds", type=int, default=1, help="alternate targets this often")
    parser.add_argument("--phase-timeout", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--postgres", action="store_true", help="also profile-service on PG")
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="spread the connections over this many AsyncClients (1: one client, as specified)",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    install_termination_handlers()
    sniffio_missing = cache_missing_sniffio()
    print_header("profile-service HTTP reads: GET /v1/customers/{id}")
    print(
        f"customers={args.customers} requests={args.requests} concurrency={args.concurrency} "
        f"warmup={args.warmup} rounds={args.rounds} client=httpx {httpx.__version__} "
        f"AsyncClient x{args.clients} http1 keep-alive, in this process",
        flush=True,
    )
    if sniffio_missing:
        print("sniffio is not installed: its failed import is cached in the client (see README)")
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-http-")))
        key, records = make_api_key()

        bare = stack.enter_context(
            ServerProcess(
                "bare",
                BARE_APP,
                dict(os.environ),
                work / "bare.log",
                ready_path="/v1/customers/ready",
                app_dir=BENCH_DIR,
            )
        )
        targets: list[Target] = []
        backends: list[tuple[str, str, int | None]] = [
            ("profile-sqlite", sqlite_url(work / "profile.db"), None)
        ]
        if args.postgres:
            postgres = stack.enter_context(embedded_postgres())
            backends.append(
                ("profile-postgres", create_postgres_database(postgres, "bench"), postgres.pid())
            )
        for name, url, db_pid in backends:
            env = profile_env(url, records)
            log = work / f"{name}.log"
            started = time.perf_counter()
            run_migrations(env, log)
            server = stack.enter_context(ServerProcess(name, PROFILE_APP, env, log))
            ids = seed(server.base_url, key, args.customers, args.seed, SEED_TIMEOUT)
            print(
                f"{name}: migrated, started and seeded {len(ids)} customers "
                f"in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
            paths = [f"/v1/customers/{rng.choice(ids)}" for _ in range(args.requests)]
            targets.append(Target(name, server, paths, db_pid))
        # The bare app gets the very same paths as the first profile target.
        targets.insert(0, Target("bare", bare, targets[0].paths))

        measurements: list[Measurement] = []
        for round_number in range(1, args.rounds + 1):
            for target in targets:
                measurement: Measurement = run_async(
                    partial(measure, target, key, args, round_number)
                )
                measurements.append(measurement)
                if measurement.errors:
                    print(f"  {target.name} log (last lines):\n{tail(target.server.log_path)}")
                print(
                    f"  {target.name} round {round_number}: {measurement.rate:,.0f} req/s, "
                    f"p99 {percentile(measurement.latencies, 0.99) * 1000:.1f} ms",
                    flush=True,
                )

    print()
    print(format_table(HEADERS, [m.row(args.rounds) for m in measurements]))
    print()
    print(summary(measurements))
    print(
        "\nserver/db/client CPU: CPU time of the uvicorn process, of the PostgreSQL server and "
        "of this load generator, as a share of one core over the phase (200% = both cores).\n"
        "machine busy: share of all cores busy during the phase, whatever the process."
    )
    failed = [m for m in measurements if m.errors]
    for m in failed:
        kinds = ", ".join(f"{kind} x{count}" for kind, count in m.errors.most_common())
        print(f"{m.target} round {m.round}: failed requests: {kinds}", file=sys.stderr)
    if failed:
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
