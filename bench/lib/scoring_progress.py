"""scoring_consume.py's progress and rows: ledger and re-score counts polled from the database,
the model fit over HTTP, and one row of the report per phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.exc import DBAPIError

from crm_shared import API_KEY_HEADER
from lib.orders import (
    BareResult,
)
from lib.processes import ServerProcess
from lib.row_counts import (
    Growth,
    wait_until_none,
    watch_growth,
)


async def wait_for_rescores(
    database_url: str, started: float, timeout: float
) -> tuple[float, int] | None:
    """Poll `pending_rescores` until it is empty: (seconds since `started`, rows left).

    None when the table does not exist (a version that re-scores inside the consumer's batch).
    """
    try:
        return await wait_until_none(
            database_url, "select count(*) from pending_rescores", started, timeout
        )
    except DBAPIError:
        return None


@dataclass(frozen=True)
class LedgerProgress(Growth):
    """How the purchase count grew during one phase."""

    rescored: tuple[float, int] | None = None  # healthy to `pending_rescores` empty, rows left


async def watch_ledger(
    database_url: str, target: int, started: float, timeout: float, server: ServerProcess
) -> LedgerProgress:
    """Poll `purchases` every 0.2 s until it holds `target` rows or `timeout` has passed."""
    return await watch_growth(
        database_url,
        "select count(*) from purchases",
        target,
        started,
        timeout,
        server,
        LedgerProgress,
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
