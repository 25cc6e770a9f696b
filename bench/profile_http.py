"""Profile reads per second and latency: ``GET /v1/customers/{id}`` next to a bare FastAPI app.

Starts profile-service (SQLite, and with ``--postgres`` also on the embedded PostgreSQL) and a
bare FastAPI app (bench/_bare_app.py) as uvicorn processes, seeds customers through the import
endpoint, then sends the same fixed number of requests at the same concurrency to each from
one httpx.AsyncClient per target (HTTP/1.1, keep-alive) in this process. The ratio
profile/bare is the number to watch: both are measured in the same run, on the same machine
state, with the same client.

    python bench/profile_http.py [--customers 1000] [--requests 20000] [--concurrency 32]
                                 [--rounds 1] [--postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx
import psutil
from _support import (
    BENCH_DIR,
    PROFILE_APP,
    CustomerRows,
    MachineCpu,
    ServerProcess,
    cache_missing_sniffio,
    client_limits,
    create_postgres_database,
    csv_bytes,
    embedded_postgres,
    format_table,
    install_termination_handlers,
    make_api_key,
    percentile,
    print_header,
    process_tree_cpu_seconds,
    profile_env,
    run_async,
    run_main,
    run_migrations,
    sqlite_url,
    tail,
)

BARE_APP = "_bare_app:create_app"
CLIENT_TIMEOUT = 30.0
SEED_TIMEOUT = 600.0  # the seeding import answers once every row is stored (~150 rows/s here)


@dataclass
class Target:
    """A server under load and the request paths it is sent."""

    name: str
    server: ServerProcess
    paths: list[str]
    db_pid: int | None = None  # a separate database server whose CPU is reported too


@dataclass
class Measurement:
    target: str
    round: int
    requests: int
    errors: Counter[str]  # failed requests by status code or exception type
    seconds: float
    latencies: list[float]
    server_cpu: float  # CPU seconds of the server process during the phase
    db_cpu: float | None
    client_cpu: float
    machine_busy: float  # share of all cores busy during the phase, any process
    truncated: bool

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def row(self, rounds: int) -> list[object]:
        name = self.target if rounds == 1 else f"{self.target} #{self.round}"
        return [
            name + (" (time limit)" if self.truncated else ""),
            self.requests,
            self.errors.total(),
            self.seconds,
            self.rate,
            percentile(self.latencies, 0.50) * 1000,
            percentile(self.latencies, 0.99) * 1000,
            f"{100 * self.server_cpu / self.seconds:.0f}%",
            "-" if self.db_cpu is None else f"{100 * self.db_cpu / self.seconds:.0f}%",
            f"{100 * self.client_cpu / self.seconds:.0f}%",
            f"{100 * self.machine_busy:.0f}%",
        ]


HEADERS = [
    "target",
    "requests",
    "errors",
    "seconds",
    "req/s",
    "p50 ms",
    "p99 ms",
    "server CPU",
    "db CPU",
    "client CPU",
    "machine busy",
]


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


def seed(base_url: str, key: str, count: int, seed: int, timeout: float) -> list[str]:
    """Create ``count`` customers with one import; return their ids (listed back, paginated)."""
    body = csv_bytes(CustomerRows(count, seed=seed, invalid_share=0, duplicate_share=0))
    headers = {"X-API-Key": key}
    with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
        response = client.post(
            "/v1/customers/import", content=body, headers={"Content-Type": "text/csv"}
        )
        response.raise_for_status()
        report = response.json()
        if report["customers_created"] != count:
            raise RuntimeError(f"seeding created {report['customers_created']} of {count}")
        ids: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/customers", params=params)
            page.raise_for_status()
            data = page.json()
            ids.extend(item["id"] for item in data["items"])
            cursor = data["next_cursor"]
            if not cursor:
                return ids


async def measure(
    target: Target, key: str, args: argparse.Namespace, round_number: int
) -> Measurement:
    """Warm up, then send ``--requests`` requests at ``--concurrency``; time each one."""
    per_client = -(-args.concurrency // args.clients)
    limits = client_limits(per_client)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=target.server.base_url,
                    headers={"X-API-Key": key},
                    http1=True,
                    http2=False,
                    limits=limits,
                    timeout=CLIENT_TIMEOUT,
                )
            )
            for _ in range(args.clients)
        ]
        await run_load(clients, target.paths[: args.warmup], args.concurrency, args.phase_timeout)
        server_cpu = process_tree_cpu_seconds(target.server.pid)
        db_cpu = process_tree_cpu_seconds(target.db_pid) if target.db_pid else None
        client_cpu = time.process_time()
        machine = MachineCpu()
        started = time.perf_counter()
        latencies, errors, truncated = await run_load(
            clients, target.paths, args.concurrency, args.phase_timeout
        )
        seconds = time.perf_counter() - started
        machine_busy = machine.busy_share()
        client_cpu = time.process_time() - client_cpu
        server_cpu = process_tree_cpu_seconds(target.server.pid) - server_cpu
        if target.db_pid and db_cpu is not None:
            db_cpu = process_tree_cpu_seconds(target.db_pid) - db_cpu
    latencies.sort()
    return Measurement(
        target.name,
        round_number,
        len(latencies),
        errors,
        seconds,
        latencies,
        server_cpu,
        db_cpu,
        client_cpu,
        machine_busy,
        truncated,
    )


async def run_load(
    clients: list[httpx.AsyncClient], paths: list[str], concurrency: int, time_limit: float
) -> tuple[list[float], Counter[str], bool]:
    """Send every path once, ``concurrency`` at a time; stop starting new ones after the limit.

    Worker ``i`` uses client ``i % len(clients)``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_limit
    pending = iter(paths)  # shared by the workers: each path is sent once
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    truncated = False

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal truncated
        for path in pending:
            if loop.time() > deadline:
                truncated = True
                return
            started = time.perf_counter()
            try:
                response = await client.get(path)
                failure = None if response.status_code == 200 else str(response.status_code)
            except httpx.HTTPError as error:
                failure = type(error).__name__
            latencies.append(time.perf_counter() - started)
            if failure is not None:
                errors[failure] += 1

    await asyncio.wait_for(
        asyncio.gather(*(worker(clients[i % len(clients)]) for i in range(concurrency))),
        timeout=time_limit + CLIENT_TIMEOUT + 5,
    )
    return latencies, errors, truncated


def summary(measurements: list[Measurement]) -> str:
    """Profile/bare throughput and p99 ratios, over all rounds."""

    def totals(name: str) -> tuple[float, float]:
        selected = [m for m in measurements if m.target == name]
        requests = sum(m.requests for m in selected)
        seconds = sum(m.seconds for m in selected)
        latencies = sorted(x for m in selected for x in m.latencies)
        return requests / seconds if seconds else 0.0, percentile(latencies, 0.99)

    bare_rate, bare_p99 = totals("bare")
    lines = []
    for name in dict.fromkeys(m.target for m in measurements if m.target != "bare"):
        rate, p99 = totals(name)
        ratio = rate / bare_rate if bare_rate else 0.0
        lines.append(
            f"{name} / bare: throughput x{ratio:.2f} ({rate:,.0f} vs {bare_rate:,.0f} req/s), "
            f"p99 x{p99 / bare_p99 if bare_p99 else 0:.1f} "
            f"({p99 * 1000:.1f} vs {bare_p99 * 1000:.1f} ms)"
        )
    cores = psutil.cpu_count() or 0
    lines.append(
        f"load generator and servers share {cores} cores: the bare figure is bounded by the "
        "client as much as by the server."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
