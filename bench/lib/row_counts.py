"""Counting a service's rows while a benchmark runs: one count, a count growing towards a target,
a count falling to zero. Shared by the consume benchmarks of scoring- and lifecycle-service.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lib.processes import (
    ServerProcess,
    tail,
)

POLL_SECONDS = 0.2


async def count_rows(database_url: str, sql: str) -> int:
    """One read-only count from the service's database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text(sql))).scalar_one())
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Growth:
    """How a count grew during one phase."""

    start_count: int  # rows when the service answered /healthz
    end_count: int
    seconds: float  # from healthy to the last poll
    first_seconds: float | None  # from healthy to the first poll that saw a new row
    steady_rate: float | None
    timed_out: bool


GrowthT = TypeVar("GrowthT", bound=Growth)


async def watch_growth(
    database_url: str,
    sql: str,
    target: int,
    started: float,
    timeout: float,
    server: ServerProcess,
    result: type[GrowthT],
) -> GrowthT:
    """Poll `sql` every 0.2 s until it counts `target` rows or `timeout` has passed.

    Raises when `server` exits meanwhile; `result` is the Growth (sub)class to return.
    """
    engine = create_async_engine(database_url)
    query = text(sql)
    start_count: int | None = None
    first: tuple[float, int] | None = None
    count, now = 0, time.perf_counter()
    try:
        while True:
            async with engine.connect() as connection:
                count = int((await connection.execute(query)).scalar_one())
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
    return result(
        start_count=start_count,
        end_count=count,
        seconds=now - started,
        first_seconds=first[0] - started if first else None,
        steady_rate=steady,
        timed_out=count < target,
    )


async def wait_until_none(
    database_url: str, sql: str, started: float, timeout: float
) -> tuple[float, int]:
    """Poll `sql` until it counts 0 or `timeout` passed: (seconds since `started`, rows left)."""
    engine = create_async_engine(database_url)
    query = text(sql)
    try:
        while True:
            async with engine.connect() as connection:
                left = int((await connection.execute(query)).scalar_one())
            now = time.perf_counter()
            if left == 0 or now - started >= timeout:
                return now - started, left
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await engine.dispose()


async def wait_for_count(database_url: str, sql: str, target: int, timeout: float) -> float:
    """Poll until `sql` counts `target`; seconds waited (the timeout when it never did)."""
    engine = create_async_engine(database_url)
    started = time.perf_counter()
    try:
        while time.perf_counter() - started < timeout:
            async with engine.connect() as connection:
                if int((await connection.execute(text(sql))).scalar_one()) == target:
                    break
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await engine.dispose()
    return time.perf_counter() - started
