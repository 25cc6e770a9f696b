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
`_baseline`), then on the working tree (or `--after REF`'s sources), and prints the two side by
side; `--rounds N` repeats the pair N times, alternating which of the two runs first.

`--profile DIR` also samples every service with py-spy and reads PostgreSQL's
pg_stat_statements during each phase of at least `--profile-from` (1,000) orders/s and the
burst, and prints where the CPU went (see `_pipeline_profile`); py-spy slows the services a
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
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import httpx
import psutil
from _baseline import Variant, comparison, export_sources
from _pipeline_profile import PhaseProfiler, enable_statement_statistics, reset_statements
from _support import (
    format_table,
    install_termination_handlers,
    machine_summary,
    percentile,
    process_tree_cpu_seconds,
    run_async,
    run_main,
    sources_digest,
)
from aiokafka import AIOKafkaProducer
from scoring_consume import YEAR_START, Message, bare_consume, encode_orders, generate_orders

from crm_devstack.launcher import Stack, start_stack
from crm_devstack.progress import NotCaughtUp, event_counts, wait_until_idle
from crm_devstack.wiring import NO_SCHEDULED_JOBS
from crm_shared import create_consumer, ensure_topics
from crm_shared.contracts import Money, OrderLine, OrderPlaced, Topic

GOAL_ORDERS_PER_SECOND = 10_000
GOAL_P99_MS_AT_1000 = 500
ORDER_CONSUMERS = ("scoring-service", "lifecycle-service", "notification-service")
PARTITIONS = 6
POLL_SECONDS = 0.25
SOURCE = "/bench/pipeline"
QUIET_ENV = {
    # Only the order stream drives the work: no scheduled refit, full re-score or aging sweep.
    **NO_SCHEDULED_JOBS,
    **{f"{prefix}_LOG_LEVEL": "WARNING" for prefix in ("PROFILE", "SCORING", "LIFECYCLE")},
    "NOTIFICATION_LOG_LEVEL": "WARNING",
}
# The event kinds followed per customer, and how to recognise them in a record's value
# (compact JSON from `encode_event`; a substring test instead of a parse keeps the collector cheap).
KINDS = {
    "score.updated": (Topic.SCORES, (b'"type":"score.updated"',)),
    "stage changed": (Topic.LIFECYCLE, (b'"type":"lifecycle.stage_changed"',)),
    "decision": (
        Topic.NOTIFICATIONS,
        (b'"type":"notification.sent"', b'"type":"notification.suppressed"'),
    ),
}

# --------------------------------------------------------------------------------------------
# Watching the chain's output


@dataclass
class ChainArrivals:
    """When this process first received each kind of event for each customer (perf_counter)."""

    first: dict[str, dict[bytes, float]] = field(default_factory=lambda: {k: {} for k in KINDS})
    records: int = 0

    def note(self, topic: str, key: bytes | None, value: bytes | None, now: float) -> None:
        self.records += 1
        if key is None or value is None:
            return
        for kind, (kind_topic, markers) in KINDS.items():
            if topic == kind_topic and any(marker in value for marker in markers):
                self.first[kind].setdefault(key, now)


async def collect(bootstrap: str, arrivals: ChainArrivals, ready: asyncio.Event) -> None:
    """Read the chain's output topics until cancelled, noting first arrivals per customer."""
    await ensure_topics(
        bootstrap, [Topic.SCORES, Topic.LIFECYCLE, Topic.NOTIFICATIONS], partitions=PARTITIONS
    )
    consumer = create_consumer(
        [Topic.SCORES, Topic.LIFECYCLE, Topic.NOTIFICATIONS],
        bootstrap_servers=bootstrap,
        group_id=f"bench-chain-{uuid.uuid4().hex[:12]}",
        client_id="bench-chain",
        session_timeout_ms=6_000,
        rebalance_timeout_ms=2_000,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=50, max_records=5_000)
            if consumer.assignment():
                ready.set()
            now = time.perf_counter()
            for partition, records in batches.items():
                for record in records:
                    arrivals.note(partition.topic, record.key, record.value, now)
    finally:
        await consumer.stop()


# --------------------------------------------------------------------------------------------
# Orders


def warmup_orders(count: int, customers: int, seed: int, now: datetime) -> list[OrderPlaced]:
    """scoring_consume's year of orders, moved so that the year ends a day before `now`."""
    shift = (now - timedelta(days=366)) - YEAR_START
    return [
        order.model_copy(update={"placed_at": order.placed_at + shift})
        for order in generate_orders(count, customers, seed)
    ]


@dataclass
class PhaseOrders:
    """A phase's orders, ready to publish, and the first orders whose latency is measured."""

    messages: list[Message]
    tracked: list[bytes | None]  # per message: the customer key when it is their first order


def phase_orders(count: int, rate: float, repeat_share: float, rng: random.Random) -> PhaseOrders:
    """`count` orders placed now (spread at `rate`); first orders of new customers, mostly."""
    start = datetime.now(UTC)
    seen: list[str] = []
    orders: list[OrderPlaced] = []
    tracked: list[bytes | None] = []
    for n in range(count):
        if seen and rng.random() < repeat_share:
            customer, first = rng.choice(seen), False
        else:
            customer, first = str(uuid.UUID(int=rng.getrandbits(128), version=4)), True
            seen.append(customer)
        price = Decimal(f"{max(rng.lognormvariate(3.2, 0.8), 1.0):.2f}")
        quantity = rng.choice((1, 1, 2))
        line = OrderLine(
            sku=f"SKU-{rng.randrange(300):05d}",
            name="Product",
            quantity=quantity,
            unit_price=Money(amount=price, currency="USD"),
        )
        placed = start + timedelta(seconds=n / rate) if rate else start
        orders.append(
            OrderPlaced(
                order_id=f"bench-{uuid.uuid4().hex}",
                customer_id=customer,
                placed_at=placed,
                total=Money(amount=price * quantity, currency="USD"),
                items=[line],
                shop_id="shop-eu",
                channel="web",
            )
        )
        tracked.append(customer.encode() if first else None)
    return PhaseOrders(encode_orders(orders), tracked)


async def publish(
    producer: AIOKafkaProducer, orders: PhaseOrders, rate: float
) -> tuple[dict[bytes, float], float]:
    """Publish at `rate` per second (0: as fast as possible); publish times of tracked orders."""
    published: dict[bytes, float] = {}
    sent = []
    started = time.perf_counter()
    for n, (message, customer) in enumerate(zip(orders.messages, orders.tracked, strict=True)):
        if rate:
            delay = started + n / rate - time.perf_counter()
            if delay > 0.002:  # sleep in slices of a few ms, then send what is due
                await asyncio.sleep(delay)
        now = time.perf_counter()
        if customer is not None:
            published[customer] = now
        sent.append(await producer.send(Topic.ORDERS, message.value, key=message.key))
    await asyncio.gather(*sent)
    return published, time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# The stack's processes


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


# --------------------------------------------------------------------------------------------
# A phase


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


async def run_phase(
    name: str,
    stack: Stack,
    producer: AIOKafkaProducer,
    arrivals: ChainArrivals,
    orders: PhaseOrders,
    rate: float,
    before: int,
    pids: dict[str, int],
    args: argparse.Namespace,
) -> PhaseResult:
    """Publish one phase's orders and follow them to the end of the chain."""
    urls = stack.urls
    total = before + len(orders.messages)
    cpu_before = {who: process_tree_cpu_seconds(pid) for who, pid in pids.items()}
    cpu_before["benchmark"] = time.process_time()
    started = time.perf_counter()
    publishing = asyncio.create_task(publish(producer, orders, rate))
    consumed_at: dict[str, float | None] = dict.fromkeys(ORDER_CONSUMERS)
    consumed = dict.fromkeys(ORDER_CONSUMERS, 0)
    # Any event consumed counts as progress: a backlog of scores may hold orders back a while.
    busy = dict.fromkeys(ORDER_CONSUMERS, 0)
    tracked = [key for key in orders.tracked if key is not None]
    last_change, last_state = started, None
    ended = "done"
    with httpx.Client(timeout=10, trust_env=False) as metrics:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            now = time.perf_counter()
            for service in ORDER_CONSUMERS:
                counts = await asyncio.to_thread(event_counts, metrics, urls[service])
                consumed[service] = counts.processed_of(Topic.ORDERS) - before
                busy[service] = int(sum(counts.processed.values()))
                if consumed_at[service] is None and consumed[service] >= len(orders.messages):
                    consumed_at[service] = now - started
            seen = tuple(sum(key in arrivals.first[kind] for key in tracked) for kind in KINDS)
            state = (*busy.values(), *seen)
            if state != last_state:
                last_change, last_state = now, state
            if not publishing.done():
                continue
            if all(at is not None for at in consumed_at.values()) and all(
                count == len(tracked) for count in seen
            ):
                break
            if now - last_change > args.stall:
                ended = f"stalled {args.stall:.0f} s"
                break
            if now - started > args.drain_timeout:
                ended = "time limit"
                break
    published, publish_seconds = publishing.result()
    seconds = time.perf_counter() - started
    cpu = {
        who: (process_tree_cpu_seconds(pid) - cpu_before[who]) / seconds
        for who, pid in pids.items()
    }
    cpu["benchmark"] = (time.process_time() - cpu_before["benchmark"]) / seconds
    latencies: dict[str, list[float]] = {}
    done_at: dict[str, float | None] = {}
    for kind in KINDS:
        first = arrivals.first[kind]
        got = [first[key] - published[key] for key in tracked if key in first]
        latencies[kind] = sorted(got)
        done_at[kind] = (
            max(first[key] for key in tracked) - started
            if tracked and len(got) == len(tracked)
            else None
        )
    settled = await settle(stack, total, args.drain_timeout)
    return PhaseResult(
        name,
        rate,
        len(orders.messages),
        len(tracked),
        publish_seconds,
        consumed_at,
        consumed,
        latencies,
        done_at,
        seconds,
        cpu,
        ended,
        settled,
    )


async def settle(stack: Stack, orders_published: int, timeout: float) -> str:
    """Wait until every service caught up with every topic (profile too); how long it took."""
    started = time.perf_counter()
    with httpx.Client(timeout=10, trust_env=False) as client:
        try:
            await asyncio.to_thread(
                functools.partial(
                    wait_until_idle,
                    client,
                    stack.urls,
                    published_from_outside={Topic.ORDERS: orders_published},
                    timeout=timeout,
                    quiet=1.0,
                )
            )
        except NotCaughtUp as error:
            return f"not settled: {error}"
    return f"settled in {time.perf_counter() - started:.1f} s"


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
        profiler = PhaseProfiler(args.profile, services, stack.postgres_url)
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


def _restart_postgres(stack: Stack) -> Callable[[], None]:
    def restart() -> None:
        stack.stop_postgres()
        stack.start_postgres()

    return restart


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
