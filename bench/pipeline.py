"""The whole chain: orders per second from `crm.orders` to stored notification decisions.

Goal (the issue "The whole chain under load and faults"): 10,000 orders per second end to end
on PostgreSQL, p99 under 500 ms at 1,000 per second. The stack is the one the end-to-end test
drives (`crm_devstack.launcher.start_stack(postgres=True)`: the embedded broker, an embedded
PostgreSQL with one database per service, the four services as uvicorn processes), with the
scheduled refit, full re-score and aging sweep off so only the order stream drives the work.

  1. Warm-up: `--warmup-orders` (2,000) orders of `--warmup-customers` (400) customers over the
     past year (scoring_consume's generator) are published and consumed; the models are fitted
     once (`POST /v1/models/fit`), so from then on scoring-service publishes `score.updated`
     for every customer an order touches; the stack is left to settle.
  2. Phases: paced publishing at each of `--rates` (100,1000 per second) for `--duration`
     (10 s) each, then a burst of `--burst` (10,000) orders as fast as the producer goes.
     Most orders are a new customer's first order (tracked for latency); `--repeat-share`
     (0.2) are further orders of customers of the same phase. Each phase ends when every
     service has consumed all its orders and every tracked customer's `score.updated`,
     `lifecycle.stage_changed` and first notification decision (`notification.sent` or
     `notification.suppressed`: the welcome for a first order, in-app or no_contact, since
     profile-service does not know these customers) has been seen, or when nothing moved for
     `--stall` (15 s), or after `--drain-timeout` (240 s); then the stack settles.
  3. The ceiling: a bare aiokafka consumer (scoring_consume.bare_consume: the services' consumer
     settings, a fresh group, doing nothing) reads every order published in the run.

Latency is from the moment an order was handed to the producer to the moment a bare consumer in
this process (one group on `crm.scores`, `crm.lifecycle` and `crm.notifications`, started
before the warm-up) received the customer's first event of that kind; both clocks are this
process's, so there is no clock skew, but its event loop also publishes, so arrival times carry
up to a few ms of its own delay. Per stage the table shows when the phase's work was done and
the orders per second that makes: for the services' order consumers from their
`events_processed_total{topic="crm.orders"}` counters (polled every 0.25 s), for the chain
from the last arrival. CPU per process is psutil's user + system time over the phase (100% =
one core). Every process is stopped on exit, Ctrl-C or error.

    python bench/pipeline.py [--rates 100,1000] [--duration 10] [--burst 10000]
        [--warmup-orders 2000] [--warmup-customers 400] [--repeat-share 0.2]
        [--drain-timeout 240] [--stall 15] [--seed 1] [--keep DIR] [--profile DIR]
        [--baseline REF [--after REF] [--rounds N]]

`--baseline REF` runs everything twice in one invocation, first on REF's sources (see
`lib/baseline.py`), then on the working tree (or `--after REF`'s sources), and prints the two
side by side; `--rounds N` repeats the pair N times, alternating which of the two runs first.

`--profile DIR` also samples every service with py-spy and reads PostgreSQL's
pg_stat_statements during each phase of at least `--profile-from` (1,000) orders/s and the
burst, and prints where the CPU went (see `lib/pipeline_profile.py`); py-spy slows the services a
little, so read the rates of a profiled run as a profile's, not as the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer
from lib.baseline import Variant, comparison, export_sources
from lib.orders import bare_consume, encode_orders
from lib.pipeline_orders import (
    KINDS,
    PARTITIONS,
    ChainArrivals,
    PhaseOrders,
    collect,
    phase_orders,
    publish,
    warmup_orders,
)
from lib.pipeline_phase import run_phase, settle
from lib.pipeline_profile import PhaseProfiler, enable_statement_statistics, reset_statements
from lib.pipeline_report import (
    PhaseResult,
    _postmaster_pid,
    progress_line,
    report,
    stack_processes,
    summary_figures,
)
from lib.processes import (
    install_termination_handlers,
    run_async,
    run_main,
)
from lib.report import format_table, machine_summary, sources_digest

from crm_contracts import Topic
from crm_devstack.launcher import Stack, start_stack
from crm_devstack.wiring import NO_SCHEDULED_JOBS
from crm_shared import ensure_topics

QUIET_ENV = {
    # Only the order stream drives the work: no scheduled refit, full re-score or aging sweep.
    **NO_SCHEDULED_JOBS,
    **{f"{prefix}_LOG_LEVEL": "WARNING" for prefix in ("PROFILE", "SCORING", "LIFECYCLE")},
    "NOTIFICATION_LOG_LEVEL": "WARNING",
}

# --------------------------------------------------------------------------------------------
# Watching the chain's output


# --------------------------------------------------------------------------------------------
# Orders


# --------------------------------------------------------------------------------------------
# The stack's processes


# --------------------------------------------------------------------------------------------
# A phase


# --------------------------------------------------------------------------------------------
# Main


async def run(stack: Stack, pids: dict[str, int], args: argparse.Namespace) -> RunResult:
    bootstrap = stack.bootstrap_servers
    profiler: PhaseProfiler | None = None
    if args.profile and stack.postgres_url:
        args.profile.mkdir(parents=True, exist_ok=True)
        await enable_statement_statistics(stack.postgres_url, _restart_postgres(stack))
        pids["postgres"] = await _postmaster_pid(stack.postgres_url)  # a new postmaster
        services = {name: pid for name, pid in pids.items() if name.endswith("-service")}
        profiler = PhaseProfiler(args.profile, services, stack.postgres_url, pids["postgres"])
        print(f"profiling {sorted(services)} with py-spy into {args.profile}", flush=True)
    rng = random.Random(args.seed)
    arrivals = ChainArrivals()
    ready = asyncio.Event()
    collector = asyncio.create_task(collect(bootstrap, arrivals, ready))
    await asyncio.wait_for(ready.wait(), 60)
    await ensure_topics(bootstrap, [Topic.ORDERS], partitions=PARTITIONS)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, client_id="bench-shop", linger_ms=5, acks="all"
    )
    await producer.start()
    results: list[PhaseResult] = []
    try:
        started = time.perf_counter()
        now = datetime.now(UTC)
        warmup = encode_orders(
            warmup_orders(args.warmup_orders, args.warmup_customers, args.seed, now)
        )
        await publish(producer, PhaseOrders(warmup, [None] * len(warmup)), 0)
        published = len(warmup)
        print(f"warm-up: {published} orders published; waiting for the stack", flush=True)
        print("  " + await settle(stack, published, args.drain_timeout), flush=True)
        async with httpx.AsyncClient(
            base_url=stack.urls["scoring-service"],
            headers={"X-API-Key": stack.api_key},
            timeout=300,
            trust_env=False,
        ) as scoring:
            fitted = await scoring.post("/v1/models/fit", json={"as_of": now.isoformat()})
            fitted.raise_for_status()
        fit = fitted.json()
        print(
            f"  fitted: {fit.get('customers')} customers, bg_nbd={bool(fit.get('bg_nbd'))}; "
            + await settle(stack, published, args.drain_timeout)
            + f"; warm-up took {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        plan: list[tuple[str, float, int]] = [
            (f"{rate:,.0f}/s for {args.duration:.0f} s", rate, int(rate * args.duration))
            for rate in args.rates
        ]
        if args.burst:
            plan.append((f"burst of {args.burst:,}", 0.0, args.burst))
        for name, rate, count in plan:
            orders = phase_orders(count, rate, args.repeat_share, rng)
            profiled = profiler is not None and (rate == 0 or rate >= args.profile_from)
            with contextlib.ExitStack() as recording:
                if profiler is not None and profiled:
                    await reset_statements(profiler.admin_url)
                    recording.enter_context(profiler.recording(name))
                result = await run_phase(
                    name, stack, producer, arrivals, orders, rate, published, pids, args
                )
            published += count
            results.append(result)
            print(progress_line(result), flush=True)
            if profiler is not None and profiled:
                print(await profiler.report(name, count), flush=True)
    finally:
        await producer.stop()
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    bare = await bare_consume(bootstrap, published, timeout=120)
    print()
    print(report(results, bare.steady_rate, bare.events, pids))
    print(f"load average at the end: {machine_summary()['load average']}", flush=True)
    return RunResult(results, bare.steady_rate)


@dataclass
class RunResult:
    phases: list[PhaseResult]
    bare_rate: float


def _restart_postgres(stack: Stack) -> Callable[[], None]:
    def restart() -> None:
        stack.stop_postgres()
        stack.start_postgres()

    return restart


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rates",
        type=lambda text: [float(x) for x in text.split(",") if x],
        default=[100.0, 1000.0],
        help="paced phases, orders per second (comma-separated; empty: none)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per paced phase")
    parser.add_argument("--burst", type=int, default=10_000, help="orders at full speed; 0: none")
    parser.add_argument("--warmup-orders", type=int, default=2_000)
    parser.add_argument("--warmup-customers", type=int, default=400)
    parser.add_argument("--repeat-share", type=float, default=0.2)
    parser.add_argument("--drain-timeout", type=float, default=240.0)
    parser.add_argument("--stall", type=float, default=15.0, help="end a phase when nothing moved")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="copy the stack's logs here")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy + pg_stat_statements into DIR"
    )
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="first run the same phases on this commit's sources (same run, for a fair A/B)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="with --baseline: run the pair N times, alternating"
    )
    parser.add_argument(
        "--after",
        metavar="REF",
        help="with --baseline: this commit's sources instead of the working tree's",
    )
    parser.add_argument(
        "--profile-from", type=float, default=1000.0, help="profile paced phases from this rate"
    )
    args = parser.parse_args()
    install_termination_handlers()
    print("# The whole chain: orders -> scores -> stages -> notification decisions")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    sources = sources_digest(
        "crm_shared",
        "profile_service",
        "scoring_service",
        "lifecycle_service",
        "notification_service",
    )
    print(f"sources: {sources}")
    print(
        f"rates={args.rates} duration={args.duration} burst={args.burst} "
        f"warmup={args.warmup_orders}/{args.warmup_customers} repeat_share={args.repeat_share}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="crm-bench-pipeline-") as work:
        variants = [Variant("working tree", {})]
        if args.after:
            commit, env = export_sources(args.after, Path(work) / "after")
            variants = [Variant(f"after {commit}", env)]
        if args.baseline:
            commit, env = export_sources(args.baseline, Path(work) / "baseline")
            variants.insert(0, Variant(f"baseline {commit}", env))
        rows: list[tuple[str, str, list[object]]] = []
        # Rounds alternate the order (A B, B A, ...) so neither variant always runs first.
        schedule = [
            (n, variant)
            for n in range(1, args.rounds + 1)
            for variant in (variants if n % 2 else variants[::-1])
        ]
        for n, variant in schedule:
            label = variant.name if args.rounds == 1 else f"{variant.name} #{n}"
            print(f"\n## {label}", flush=True)
            outcome = run_stack(Path(work) / label.replace(" ", "-"), variant, args)
            rows += [(r.name, label, summary_figures(r)) for r in outcome.phases]
            rows += [("bare consumer", label, [f"{outcome.bare_rate:,.0f} records/s"])]
        if len(schedule) > 1:
            stages = [f"{kind} {p}" for kind in KINDS for p in ("p50 ms", "p99 ms")]
            print("\nthe variants side by side (decisions/s: tracked first orders / seconds):\n")
            print(
                format_table(
                    ["phase", "sources", "decisions/s", *stages, "CPU ms/order"],
                    [row + [""] * (10 - len(row)) for row in comparison(rows)],
                )
            )
        return 0


def run_stack(data_dir: Path, variant: Variant, args: argparse.Namespace) -> RunResult:
    """Start a stack (the variant's sources), run every phase on it, stop it."""
    started = time.perf_counter()
    if args.profile and args.baseline:  # one folder of stacks per variant
        args = argparse.Namespace(**{**vars(args), "profile": args.profile / data_dir.name})
    try:
        with start_stack(
            data_dir=data_dir,
            free_ports=True,
            postgres=True,
            extra_env={**QUIET_ENV, **variant.env},
        ) as stack:
            pids = stack_processes(stack)
            print(
                f"stack on PostgreSQL started in {time.perf_counter() - started:.1f} s; "
                f"processes: {pids}",
                flush=True,
            )
            outcome: RunResult = run_async(functools.partial(run, stack, pids, args))
            return outcome
    finally:
        if args.keep:
            keep = args.keep / data_dir.name
            keep.mkdir(parents=True, exist_ok=True)
            for log in data_dir.glob("*.log"):
                shutil.copy(log, keep / log.name)


if __name__ == "__main__":
    run_main(main)
