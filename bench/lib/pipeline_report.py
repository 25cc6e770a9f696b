"""pipeline.py's figures: each phase's result, the processes it measured and the final report."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil

from crm_devstack.launcher import Stack
from lib.pipeline_orders import (
    KINDS,
)
from lib.report import format_table, percentile


def stack_processes(stack: Stack) -> dict[str, int]:
    """Process ids: each service's uvicorn, the broker and the PostgreSQL postmaster."""
    children = psutil.Process().children(recursive=True)
    pids: dict[str, int] = {}

    def find(*parts: str) -> int | None:
        for child in children:
            with contextlib.suppress(psutil.Error):
                line = " ".join(child.cmdline())
                if all(part in line for part in parts):
                    return child.pid
        return None

    for name, service in stack.services.items():
        pid = find("uvicorn", f"--port {service.base_url.rsplit(':', 1)[1]}")
        if pid:
            pids[name] = pid
    broker = find("--listener-url", f"tcp://{stack.bootstrap_servers}")
    if broker:
        pids["broker"] = broker
    if stack.postgres_url:
        pids["postgres"] = asyncio.run(_postmaster_pid(stack.postgres_url))
    return pids


async def _postmaster_pid(admin_url: str) -> int:
    connection = await asyncpg.connect(admin_url)
    try:
        directory = await connection.fetchval("select current_setting('data_directory')")
    finally:
        await connection.close()
    return int((Path(directory) / "postmaster.pid").read_text().split()[0])


@dataclass
class PhaseResult:
    name: str
    rate: float  # asked for; 0 = as fast as possible
    orders: int
    tracked: int
    publish_seconds: float
    consumed_at: dict[str, float | None]  # service -> seconds until it consumed every order
    consumed: dict[str, int]  # service -> orders of this phase consumed by the end
    latencies: dict[str, list[float]]  # kind -> sorted seconds, tracked customers only
    done_at: dict[str, float | None]  # kind -> seconds until the last tracked arrival
    seconds: float  # phase start to its end (all done, stalled or timed out)
    cpu: dict[str, float]  # process -> share of one core over `seconds`
    ended: str
    settled: str


def summary_figures(result: PhaseResult) -> list[object]:
    """Decisions/s, p50/p99 per stage and CPU ms per order: one row of `--baseline`'s table."""
    done = result.done_at["decision"]
    figures: list[object] = [
        f"{result.tracked / done:,.0f}" if done else f"({len(result.latencies['decision']):,})"
    ]
    for kind in KINDS:
        values = result.latencies[kind]
        figures += [percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000]
    figures.append(1000 * sum(result.cpu.values()) * result.seconds / result.orders)
    return figures


def progress_line(result: PhaseResult) -> str:
    p99 = {kind: percentile(values, 0.99) * 1000 for kind, values in result.latencies.items()}
    return (
        f"  {result.name}: {result.orders:,} orders in {result.seconds:.1f} s ({result.ended}); "
        + ", ".join(f"p99 {kind} {ms:,.0f} ms" for kind, ms in p99.items())
        + f"; {result.settled}"
    )


def report(results: Sequence[PhaseResult], bare_rate: float, bare_events: int, pids: dict) -> str:
    throughput_rows = []
    latency_rows = []
    for r in results:
        row: list[object] = [r.name, r.orders, r.publish_seconds, r.orders / r.publish_seconds]
        for service in ORDER_CONSUMERS:
            at = r.consumed_at[service]
            row.append(
                f"{r.orders / at:,.0f}"
                if at
                else f"{r.consumed[service] / r.seconds:,.0f} ({r.consumed[service]:,} only)"
            )
        for kind in KINDS:
            at = r.done_at[kind]
            got = len(r.latencies[kind])
            row.append(
                f"{r.tracked / at:,.0f}"
                if at
                else f"{got / r.seconds:,.0f} ({got:,}/{r.tracked:,})"
            )
        row.append(r.ended)
        throughput_rows.append(row)
        for kind in KINDS:
            values = r.latencies[kind]
            latency_rows.append(
                [
                    r.name,
                    kind,
                    len(values),
                    r.tracked - len(values),
                    percentile(values, 0.50) * 1000,
                    percentile(values, 0.99) * 1000,
                    (values[-1] if values else 0.0) * 1000,
                ]
            )
    who = [*pids, "benchmark"]
    cpu_rows = [
        [r.name, r.seconds, *(f"{100 * r.cpu.get(name, 0):.0f}%" for name in who)] for r in results
    ]
    # CPU time per order: share of a core x seconds / orders (includes the phase's drain).
    per_order_rows = [
        [
            r.name,
            *(f"{1000 * r.cpu.get(name, 0) * r.seconds / r.orders:.2f}" for name in who),
            f"{1000 * sum(r.cpu.values()) * r.seconds / r.orders:.2f}",
        ]
        for r in results
    ]
    lines = [
        "orders/s per stage (orders of the phase / seconds from its start until that stage had "
        "all of them; a rate-limited phase cannot exceed its rate):",
        "",
        format_table(
            [
                "phase",
                "orders",
                "publish s",
                "published/s",
                *(f"{s.split('-')[0]} consumed/s" for s in ORDER_CONSUMERS),
                *(f"{kind}/s" for kind in KINDS),
                "ended",
            ],
            throughput_rows,
        ),
        "",
        "latency from publish to first arrival, tracked first orders (ms):",
        "",
        format_table(
            ["phase", "event", "seen", "missing", "p50 ms", "p99 ms", "max ms"], latency_rows
        ),
        "",
        "CPU per process over the phase (100% = one core):",
        "",
        format_table(["phase", "seconds", *who], cpu_rows),
        "",
        "CPU ms per order per process (CPU over the phase / its orders):",
        "",
        format_table(["phase", *who, "total"], per_order_rows),
        "",
        f"bare aiokafka consumer on crm.orders: {bare_events:,} records, "
        f"{bare_rate:,.0f} records/s (steady); goal {GOAL_ORDERS_PER_SECOND:,} orders/s end to "
        f"end, p99 under {GOAL_P99_MS_AT_1000} ms at 1,000/s.",
    ]
    return "\n".join(lines)


GOAL_ORDERS_PER_SECOND = 10_000


GOAL_P99_MS_AT_1000 = 500


ORDER_CONSUMERS = ("scoring-service", "lifecycle-service", "notification-service")
