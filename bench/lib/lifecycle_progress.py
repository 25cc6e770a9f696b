"""lifecycle_consume.py's progress: how many orders lifecycle-service applied, when its outbox
drained, and what it stored.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.processes import ServerProcess
from lib.row_counts import Growth, count_rows, wait_until_none, watch_growth

DRAIN_TIMEOUT = 120.0  # longest wait for the outbox after the last order was applied


APPLIED_SQL = "select count(*) from lifecycle_orders"


UNSENT_SQL = "select count(*) from outbox where sent_at is null"


@dataclass(frozen=True)
class Progress(Growth):
    """How the applied orders grew during the phase, and when the outbox was empty."""

    drained_seconds: float | None = None  # from healthy to an empty outbox
    unsent: int = 0  # outbox rows still unsent when the wait ended


async def watch_applied(
    database_url: str, target: int, started: float, timeout: float, server: ServerProcess
) -> Progress:
    """Poll `lifecycle_orders` every 0.2 s until it holds `target` rows or `timeout` passed."""
    return await watch_growth(database_url, APPLIED_SQL, target, started, timeout, server, Progress)


async def wait_for_drain(database_url: str, started: float, timeout: float) -> tuple[float, int]:
    """Poll the outbox until nothing is unsent: (seconds since `started`, rows left)."""
    return await wait_until_none(database_url, UNSENT_SQL, started, timeout)


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
