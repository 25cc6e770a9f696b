"""Customer 360 reads per second and latency: ``GET /v1/customers/{id}/360`` next to a bare app.

Goal (the issue "The whole chain under load and faults"): at least half the throughput of a
bare FastAPI endpoint measured in the same run. profile-service runs as a uvicorn process on
the embedded PostgreSQL with Kafka on (the embedded broker), so its 360 read model is filled
the way production fills it: customers are seeded through the import endpoint, then for every
customer a `score.updated`, a `lifecycle.stage_changed`, for `--warning-share` (0.3) of them a
`churn.warning`, and `--notifications` (5) `notification.sent` / `notification.suppressed`
events are published to `crm.scores`, `crm.lifecycle` and `crm.notifications`; the benchmark
waits until the service's consumer has processed them all (its ``events_processed_total``).

The baseline is a FastAPI app with one route of the same path (``create_bare_app`` in
lib/view_events.py) that returns, as a plain dict, the body profile-service answered for one of
these customers: same client, same paths, same concurrency, same response size, no middleware,
auth or database. Load, timing, table and ratios are profile_http.py's (``measure``,
``summary`` in lib/http_load.py).

    python bench/customer_360.py [--customers 1000] [--requests 20000] [--concurrency 32]
        [--notifications 5] [--warning-share 0.3] [--rounds 1] [--clients 1] [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import httpx
from lib.backends import PROFILE_APP, make_api_key, start_profile_backends
from lib.http_client import cache_missing_sniffio
from lib.http_load import HEADERS, Measurement, Target, measure, seed, summary
from lib.processes import (
    BENCH_DIR,
    ServerProcess,
    install_termination_handlers,
    run_async,
    run_main,
    run_migrations,
    tail,
)
from lib.report import format_table, percentile, print_header
from lib.view_events import (
    BARE_APP,
    BARE_BODY_ENV,
    FILL_TIMEOUT,
    SEED_TIMEOUT,
    publish_view_events,
    view_events,
    wait_until_consumed,
)

# --------------------------------------------------------------------------------------------
# Filling the read model


# --------------------------------------------------------------------------------------------
# Main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=1000, help="customers to seed")
    parser.add_argument("--notifications", type=int, default=5, help="messages per customer")
    parser.add_argument("--warning-share", type=float, default=0.3)
    parser.add_argument("--requests", type=int, default=20_000, help="requests per target")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured requests first")
    parser.add_argument("--rounds", type=int, default=1, help="alternate targets this often")
    parser.add_argument("--phase-timeout", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=1, help="AsyncClients (see profile_http)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    install_termination_handlers()
    sniffio_missing = cache_missing_sniffio()
    print_header("profile-service HTTP reads: GET /v1/customers/{id}/360 on PostgreSQL")
    print(
        f"customers={args.customers} notifications/customer={args.notifications} "
        f"warning_share={args.warning_share} requests={args.requests} "
        f"concurrency={args.concurrency} warmup={args.warmup} rounds={args.rounds} "
        f"client=httpx {httpx.__version__} AsyncClient x{args.clients}, in this process",
        flush=True,
    )
    if sniffio_missing:
        print("sniffio is not installed: its failed import is cached in the client")
    rng = random.Random(args.seed)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-360-")))
        key, records = make_api_key()
        backends = start_profile_backends(stack, work, records)
        env, bootstrap, postgres = backends.env, backends.bootstrap, backends.postgres
        log = work / "profile.log"
        started = time.perf_counter()
        run_migrations(env, log)
        profile = stack.enter_context(ServerProcess("profile-postgres", PROFILE_APP, env, log))
        ids = seed(profile.base_url, key, args.customers, args.seed, SEED_TIMEOUT)
        seeded = time.perf_counter() - started
        payloads = view_events(ids, args.notifications, args.warning_share, args.seed)
        asyncio.run(publish_view_events(bootstrap, payloads))
        filled = wait_until_consumed(profile, len(payloads), FILL_TIMEOUT)
        print(
            f"profile-postgres: seeded {len(ids)} customers in {seeded:.1f} s; "
            f"{len(payloads):,} view events consumed {filled:.1f} s after publishing",
            flush=True,
        )
        with httpx.Client(base_url=profile.base_url, headers={"X-API-Key": key}) as client:
            sample = client.get(f"/v1/customers/{ids[0]}/360")
            sample.raise_for_status()
            metrics = client.get("/metrics").text
        view = sample.json()
        outcomes = [
            line for line in metrics.splitlines() if line.startswith("events_processed_total")
        ]
        print("profile-service consumed: " + "; ".join(outcomes), flush=True)
        if any('outcome="dead_lettered"' in line for line in outcomes):
            print("warning: some view events were dead-lettered; the read model is incomplete")
        body_path = work / "bare-360.json"
        body_path.write_bytes(sample.content)
        print(
            f"a 360 body: {len(sample.content):,} bytes; scores={view['scores'] is not None} "
            f"lifecycle={view['lifecycle'] is not None} "
            f"notifications={len(view['recent_notifications'])}",
            flush=True,
        )
        bare = stack.enter_context(
            ServerProcess(
                "bare",
                BARE_APP,
                {**os.environ, BARE_BODY_ENV: str(body_path)},
                work / "bare.log",
                ready_path="/v1/customers/ready/360",
                app_dir=BENCH_DIR,
            )
        )
        paths = [f"/v1/customers/{rng.choice(ids)}/360" for _ in range(args.requests)]
        targets = [
            Target("bare", bare, paths),
            Target("profile-postgres", profile, paths, postgres.pid()),
        ]
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
    print("goal: profile / bare throughput of at least x0.50")
    failed = [m for m in measurements if m.errors]
    for m in failed:
        kinds = ", ".join(f"{kind} x{count}" for kind, count in m.errors.most_common())
        print(f"{m.target} round {m.round}: failed requests: {kinds}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
