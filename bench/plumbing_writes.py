"""PostgreSQL CPU per row of the event path's plumbing writes, with and without the indexes
no query reads (`crm_shared.plumbing_tables(unread_indexes=...)`).

On the chain's path every order consumed from `crm.orders` adds an inbox row (scoring,
lifecycle, notification) and most events published add an outbox row. This script builds
the plumbing tables both ways in one embedded PostgreSQL (`fsync` off, as the benchmarks
run it), then writes batches through the services' own functions (`record_new_events`,
`add_many_to_outbox`) on one connection, alternating the two shapes, and reads the CPU time
of that connection's server process from /proc before and after each batch: the server's own
CPU, which other processes on a busy machine do not inflate.

    python bench/plumbing_writes.py [--batches 200] [--batch-size 350]
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from datetime import UTC, datetime

from lib.backends import create_postgres_database, embedded_postgres
from lib.processes import run_async, run_main
from lib.report import format_table, machine_summary
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from crm_contracts import Stage, StageChanged, build_event
from crm_shared import PlumbingTables, add_many_to_outbox, new_id, plumbing_tables
from crm_shared._inbox import record_new_events

_TICKS = os.sysconf("SC_CLK_TCK")
SHAPES = ("with", "without")


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a server process (from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


@dataclass
class Shape:
    """One database whose plumbing tables have (or lack) the unread indexes."""

    tables: PlumbingTables
    sessions: async_sessionmaker[AsyncSession]
    pid: int = 0
    inbox: float = 0.0
    outbox: float = 0.0


async def open_shape(url: str, unread_indexes: bool) -> Shape:
    """Create the plumbing tables in the database at `url`; one connection to write through."""
    engine = create_async_engine(url, pool_size=1, max_overflow=0)
    metadata = MetaData()
    tables = plumbing_tables(metadata, unread_indexes=unread_indexes)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    shape = Shape(tables, async_sessionmaker(engine, expire_on_commit=False))
    async with shape.sessions() as session:
        shape.pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
    return shape


async def measure(urls: dict[str, str], args: argparse.Namespace) -> list[list[object]]:
    shapes = {name: await open_shape(url, name == "with") for name, url in urls.items()}
    now = datetime.now(UTC)
    # lifecycle's event on the chain's path (a first order's stage change)
    change = StageChanged(
        customer_id=new_id(),
        previous_stage=None,
        stage=Stage.NEW,
        changed_at=now,
        cause=new_id(),
        reason="first order",
    )
    event = build_event(change, source="/lifecycle-service", time=now)
    for batch in range(args.batches):
        for name in list(shapes) if batch % 2 else list(shapes)[::-1]:
            shape = shapes[name]
            ids = [new_id() for _ in range(args.batch_size)]
            events = [event.model_copy(update={"id": i}) for i in ids]
            async with shape.sessions() as session, session.begin():
                before = server_cpu_seconds(shape.pid)
                await record_new_events(
                    session, shape.tables.processed_events, "bench", ids, datetime.now(UTC)
                )
                middle = server_cpu_seconds(shape.pid)
                await add_many_to_outbox(session, shape.tables, events)
                shape.outbox += server_cpu_seconds(shape.pid) - middle
                shape.inbox += middle - before
    rows = args.batches * args.batch_size
    with_, without = shapes["with"], shapes["without"]
    return [
        [
            kind,
            f"{getattr(with_, kind) / rows * 1e6:.2f}",
            f"{getattr(without, kind) / rows * 1e6:.2f}",
            f"{(getattr(with_, kind) - getattr(without, kind)) / rows * 1e6:.2f}",
            f"{rows:,}",
        ]
        for kind in ("inbox", "outbox")
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=350)
    args = parser.parse_args()
    print("# Plumbing writes: PostgreSQL CPU per row, with and without the unread indexes")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    with embedded_postgres() as server:
        urls = {name: create_postgres_database(server, f"{name}_indexes") for name in SHAPES}
        rows = run_async(lambda: measure(urls, args))
    print()
    print(
        format_table(
            ["rows", "µs per row, with", "µs per row, without", "saved µs per row", "rows each"],
            rows,
        )
    )
    print(f"load average at the end: {machine_summary()['load average']}")
    return 0


if __name__ == "__main__":
    run_main(main)
