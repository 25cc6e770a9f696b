"""scoring_consume.py's progress and rows: ledger and re-score counts polled from the database,
the model fit over HTTP, and one row of the report per phase.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from crm_shared import API_KEY_HEADER
from lib.orders import (
    BareResult,
)
from lib.processes import (
    ServerProcess,
    tail,
)


async def count_rows(database_url: str, sql: str) -> int:
    """One read-only count from the service's database."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text(sql))).scalar_one())
    finally:
        await engine.dispose()


async def wait_for_rescores(
    database_url: str, started: float, timeout: float
) -> tuple[float, int] | None:
    """Poll `pending_rescores` until it is empty: (seconds since `started`, rows left).

    None when the table does not exist (a version that re-scores inside the consumer's batch).
    """
    engine = create_async_engine(database_url)
    query = text("select count(*) from pending_rescores")
    try:
        while True:
            try:
                async with engine.connect() as connection:
                    pending = int((await connection.execute(query)).scalar_one())
            except DBAPIError:
                return None
            now = time.perf_counter()
            if pending == 0 or now - started >= timeout:
                return now - started, pending
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


@dataclass(frozen=True)
class LedgerProgress:
    """How the purchase count grew during one phase."""

    start_count: int  # purchases when the service answered /healthz
    end_count: int
    seconds: float  # from healthy to the last poll
    first_seconds: float | None  # from healthy to the first poll that saw a new purchase
    steady_rate: float | None
    timed_out: bool
    rescored: tuple[float, int] | None = None  # healthy to `pending_rescores` empty, rows left


async def watch_ledger(
    database_url: str, target: int, started: float, timeout: float, server: ServerProcess
) -> LedgerProgress:
    """Poll `purchases` every 0.2 s until it holds `target` rows or `timeout` has passed."""
    engine = create_async_engine(database_url)
    query = text("select count(*) from purchases")
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
    return LedgerProgress(
        start_count=start_count,
        end_count=count,
        seconds=now - started,
        first_seconds=first[0] - started if first else None,
        steady_rate=steady,
        timed_out=count < target,
    )


def describe(progress: LedgerProgress) -> str:
    """One line about a phase's progress."""
    p = progress
    first = "never" if p.first_seconds is None else f"{p.first_seconds:.1f} s"
    steady = "-" if p.steady_rate is None else f"{p.steady_rate:,.0f}/s"
    limit = " (time limit)" if p.timed_out else ""
    rescored = ""
    if p.rescored is not None:
        rescored = f"; pending_rescores empty after {_rescored_cell(p.rescored)} s"
    return (
        f"purchases {p.start_count:,} at healthy -> {p.end_count:,} after {p.seconds:.1f} s"
        f"{limit}; first new purchase seen after {first}; steady {steady}{rescored}"
    )


def fit(base_url: str, api_key: str, as_of: datetime) -> dict[str, Any]:
    """POST /v1/models/fit; the stored model version."""
    response = httpx.post(
        f"{base_url}/v1/models/fit",
        json={"as_of": as_of.isoformat()},
        headers={API_KEY_HEADER: api_key},
        timeout=600,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _rescored_cell(rescored: tuple[float, int] | None) -> str:
    if rescored is None:
        return "-"
    seconds, left = rescored
    return f"{seconds:.1f}" + (f" ({left:,} left)" if left else "")


@dataclass(frozen=True)
class PhaseRow:
    backend: str
    phase: str
    already: int  # purchases in the ledger from earlier phases
    progress: LedgerProgress
    service_cpu: float
    db_cpu: float | None
    broker_cpu: float
    machine_busy: float
    bare: BareResult
    sources: str

    def cells(self) -> list[object]:
        p = self.progress
        consumed = p.end_count - p.start_count
        rate = consumed / p.seconds if p.seconds > 0 else 0.0
        label = self.phase + (" (time limit)" if p.timed_out else "")
        return [
            self.backend,
            label,
            consumed,
            p.start_count - self.already,
            round(p.seconds, 1),
            round(rate),
            "-" if p.first_seconds is None else round(p.first_seconds, 1),
            "-" if p.steady_rate is None else round(p.steady_rate),
            _rescored_cell(p.rescored),
            f"{self.service_cpu:.0%}",
            "-" if self.db_cpu is None else f"{self.db_cpu:.0%}",
            f"{self.broker_cpu:.0%}",
            f"{self.machine_busy:.0%}",
            round(self.bare.steady_rate),
            f"{rate / self.bare.steady_rate:.1%}" if self.bare.steady_rate else "-",
            f"{rate / GOAL_EVENTS_PER_SECOND:.1%}",
            self.sources,
        ]


HEADERS = [
    "backend",
    "phase",
    "events",
    "before healthy",
    "seconds",
    "events/s",
    "1st purchase s",
    "steady events/s",
    "re-scored s",
    "service CPU",
    "db CPU",
    "broker CPU",
    "machine busy",
    "bare consumer events/s",
    "vs bare",
    "vs goal",
    "sources",
]


GOAL_EVENTS_PER_SECOND = 10_000


POLL_SECONDS = 0.2
