"""Where a run's time goes in the database: SQL time per statement kind, the process's peak
memory, and PostgreSQL's settings for the report.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from typing import Any

import psutil
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


class RssSampler:
    """This process's resident set size, sampled in a thread while the block runs."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.before = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


_STATEMENT_TARGET = re.compile(r"^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)", re.IGNORECASE)


_SELECT_FROM = re.compile(r"\bFROM\s+(\w+)", re.IGNORECASE)


def statement_kind(statement: str) -> str:
    """``upsert customer_lifecycles``, ``select churn_warnings``...: what a statement does."""
    target = _STATEMENT_TARGET.match(statement)
    if target is not None:
        verb = target.group(1).split()[0].lower()
        if verb == "insert" and "ON CONFLICT" in statement.upper():
            verb = "upsert"
        return f"{verb} {target.group(2)}"
    if "advisory" in statement:
        return "advisory lock"
    table = _SELECT_FROM.search(statement)
    return f"select {table.group(1)}" if table else statement.split()[0].lower()


class StatementTimer:
    """Wall time of every statement by kind, driver round trip included (engine events).

    The time between ``before_cursor_execute`` and ``after_cursor_execute`` is the database's
    work plus the driver's encoding, the socket and the decoding of the rows; the sweep's wall
    time minus these is the Python around them (SQLAlchemy's compile and result processing,
    the domain functions, building the parameters).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = {}
        event.listen(engine.sync_engine, "before_cursor_execute", self._before)
        event.listen(engine.sync_engine, "after_cursor_execute", self._after)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()
        self.rows.clear()
        self.durations.clear()

    def _before(self, connection: Any, *_args: Any) -> None:
        connection.info["bench_statement_started"] = time.perf_counter()

    def _after(
        self,
        connection: Any,
        _cursor: Any,
        statement: str,
        parameters: Any,
        _context: Any,
        executemany: bool,
    ) -> None:
        started = connection.info.pop("bench_statement_started", None)
        if started is None:
            return
        kind = statement_kind(statement)
        elapsed = time.perf_counter() - started
        self.durations.setdefault(kind, []).append(elapsed)
        self.seconds[kind] += elapsed
        self.calls[kind] += 1
        self.rows[kind] += len(parameters) if executemany else 1

    def breakdown(self, wall: float) -> list[tuple[str, int, int, float, str]]:
        """(kind, calls, parameter sets, seconds, ms per call), slowest first, then Python."""
        kinds = [
            (kind, self.calls[kind], self.rows[kind], seconds, _per_call(self.durations[kind]))
            for kind, seconds in self.seconds.most_common()
        ]
        python = wall - sum(self.seconds.values())
        return [*kinds, ("Python outside the statements", 0, 0, python, "")]


def _per_call(durations: list[float]) -> str:
    """First, median and last call in ms: whether a statement slows down as the sweep goes."""
    if len(durations) < 3:
        return ""
    ms = [d * 1000 for d in durations]
    return (
        f"ms per call: first {ms[0]:.0f}, median {sorted(ms)[len(ms) // 2]:.0f}, last {ms[-1]:.0f}"
    )


async def postgres_settings(database_url: str) -> str:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            values = []
            for name in ("server_version", "shared_buffers", "work_mem", "synchronous_commit"):
                value = (await connection.execute(text(f"show {name}"))).scalar_one()
                values.append(f"{name}={value}")
            return ", ".join(values)
    finally:
        await engine.dispose()


RSS_SAMPLE_SECONDS = 0.05
