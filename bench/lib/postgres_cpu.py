"""PostgreSQL's CPU over a block, split by process kind: each database's backends, autovacuum,
the WAL writer, the checkpointer and the rest.

The server's processes are read every `interval` seconds (psutil): a process keeps the CPU
time of its last reading, so one that exits between readings (an autovacuum worker) loses
at most its last interval, which lands in "exited, not attributed" (the tree's total, with
the reaped children's times, less what the readings attributed).
"""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import psutil

from lib.processes import process_tree_cpu_seconds


def process_kind(cmdline: list[str]) -> str:
    """`postgres: user db [local] idle` -> `backend db`; `postgres: walwriter` -> `walwriter`."""
    title = " ".join(cmdline)
    if not title.startswith("postgres: "):
        return "postmaster"
    words = title.removeprefix("postgres: ").split()
    if words[:2] == ["autovacuum", "worker"]:
        return "autovacuum worker"
    if words[:2] == ["autovacuum", "launcher"]:
        return "autovacuum launcher"
    if len(words) >= 3 and (words[2].startswith("[") or ":" in words[2] or "(" in words[2]):
        return f"backend {words[1]}"  # user, database, client address, state
    return " ".join(w for w in words if not w.isdigit())


@dataclass
class PostgresCpu:
    """CPU seconds per process kind while the block ran (see `postgres_cpu`)."""

    by_kind: dict[str, float] = field(default_factory=dict)
    total: float = 0.0


@contextlib.contextmanager
def postgres_cpu(postmaster: int, interval: float = 0.25) -> Iterator[PostgresCpu]:
    """Read the server's processes while the block runs; fill the result on exit."""
    result = PostgresCpu()
    start: dict[int, float] = {}
    last: dict[int, tuple[str, float]] = {}
    stop = threading.Event()

    def read(first: bool) -> None:
        with contextlib.suppress(psutil.Error):
            for process in psutil.Process(postmaster).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    with process.oneshot():
                        times = process.cpu_times()
                        seconds = times.user + times.system
                        kind = process_kind(process.cmdline())
                    if first:
                        start[process.pid] = seconds
                    last[process.pid] = (kind, seconds)

    def run() -> None:
        while not stop.wait(interval):
            read(first=False)

    total_before = process_tree_cpu_seconds(postmaster)
    read(first=True)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        read(first=False)
        by_kind: collections.defaultdict[str, float] = collections.defaultdict(float)
        for pid, (kind, seconds) in last.items():
            by_kind[kind] += seconds - start.get(pid, 0.0)
        result.total = process_tree_cpu_seconds(postmaster) - total_before
        by_kind["exited, not attributed"] = result.total - sum(by_kind.values())
        result.by_kind = dict(sorted(by_kind.items(), key=lambda item: -item[1]))
