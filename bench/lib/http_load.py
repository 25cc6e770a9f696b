"""HTTP load for the read benchmarks: seed customers through the import, send random reads at
a fixed concurrency, and summarise throughput, latency and CPU per target.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import psutil

from lib.customers import CustomerRows, csv_bytes
from lib.http_client import client_limits
from lib.processes import (
    MachineCpu,
    ServerProcess,
    process_tree_cpu_seconds,
)
from lib.report import percentile

CLIENT_TIMEOUT = 30.0


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
