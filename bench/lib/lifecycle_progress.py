"""lifecycle_consume.py's progress: how many orders lifecycle-service applied, when its outbox
drained, and what it stored.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lib.processes import (
    ServerProcess,
    tail,
)
from lib.scoring_progress import count_rows

DRAIN_TIMEOUT = 120.0  # longest wait for the outbox after the last order was applied


APPLIED_SQL = "select count(*) from lifecycle_orders"


UNSENT_SQL = "select count(*) from outbox where sent_at is null"


@dataclass(frozen=True)
class Progress:
    """How the applied orders grew during the phase, and when the outbox was empty."""

    start_count: int  # orders applied when the service answered /healthz
    end_count: int
    seconds: float  # from healthy to the last poll
    first_seconds: float | None  # from healthy to the first poll that saw a new order
    steady_rate: float | None
    timed_out: bool
    drained_seconds: float | None = None  # from healthy to an empty outbox
    unsent: int = 0  # outbox rows still unsent when the wait ended


async def watch_applied(
    database_url: str, target: int, started: float, timeout: float, server: ServerProcess
) -> Progress:
    """Poll `lifecycle_orders` every 0.2 s until it holds `target` rows or `timeout` passed."""
    engine = create_async_engine(database_url)
    start_count: int | None = None
    first: tuple[float, int] | None = None
    count, now = 0, time.perf_counter()
    try:
        while True:
            async with engine.connect() as connection:
                count = int((await connection.execute(text(APPLIED_SQL))).scalar_one())
            now = time.perf_counter()
            if start_count is None:
                start_count = count
            elif first is None and count > start_count:
                first = (now, count)
            if count >= target or now - started >= timeout:
                break
            process = server.process
            if process is None or process.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{tail(server.log_path)}")
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await engine.dispose()
    assert start_count is not None
    steady: float | None = None
    if first is not None and now > first[0]:
        steady = (count - first[1]) / (now - first[0])
    return Progress(
        start_count=start_count,
        end_count=count,
        seconds=now - started,
        first_seconds=first[0] - started if first else None,
        steady_rate=steady,
        timed_out=count < target,
    )


async def wait_for_drain(database_url: str, started: float, timeout: float) -> tuple[float, int]:
    """Poll the outbox until nothing is unsent: (seconds since `started`, rows left)."""
    engine = create_async_engine(database_url)
    try:
        while True:
            async with engine.connect() as connection:
                unsent = int((await connection.execute(text(UNSENT_SQL))).scalar_one())
            now = time.perf_counter()
            if unsent == 0 or now - started >= timeout:
                return now - started, unsent
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await engine.dispose()


async def stored_counts(database_url: str) -> dict[str, int]:
    """Rows the service stored: customers, transitions, warnings, outbox events."""
    tables = {
        "customers": "customer_lifecycles",
        "transitions": "stage_transitions",
        "warnings": "churn_warnings",
        "outbox": "outbox",
    }
    return {
        name: await count_rows(database_url, f"select count(*) from {table}")
        for name, table in tables.items()
    }


POLL_SECONDS = 0.2
