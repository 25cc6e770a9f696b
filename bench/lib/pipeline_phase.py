"""pipeline.py's phases: publish one phase's orders and wait until the chain has settled."""

from __future__ import annotations

import argparse
import asyncio
import functools
import time

import httpx
from aiokafka import AIOKafkaProducer

from crm_contracts import Topic
from crm_devstack.launcher import Stack
from crm_devstack.progress import NotCaughtUp, event_counts, wait_until_idle
from lib.pipeline_orders import (
    KINDS,
    ChainArrivals,
    PhaseOrders,
    publish,
)
from lib.pipeline_report import (
    ORDER_CONSUMERS,
    PhaseResult,
)
from lib.processes import (
    process_tree_cpu_seconds,
)

POLL_SECONDS = 0.25


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
