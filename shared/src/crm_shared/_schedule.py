"""Scheduled jobs (refits, re-scores, sweeps) that run on one replica at a time."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

_logger = logging.getLogger("crm.schedule")


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"job:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def hold_job_lock(session: AsyncSession, name: str) -> bool:
    """Take the job's lock for this transaction; False if another replica holds it.

    PostgreSQL: a transaction-scoped advisory lock, released at commit or rollback, also
    when the holder dies. SQLite serves one process, whose write lock already serialises.
    """
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return True
    return bool(await session.scalar(select(func.pg_try_advisory_xact_lock(_lock_key(name)))))


@contextlib.asynccontextmanager
async def job_lock(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    """Hold the job's lock for the whole block, across transactions; yields False if taken.

    PostgreSQL: a session advisory lock on a connection kept for the block, so a job that
    commits in chunks stays the only runner; a dead holder's connection drops and frees it.
    SQLite serves one process, whose write lock already serialises.
    """
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = _lock_key(name)
    async with engine.connect() as connection:
        held = bool(await connection.scalar(select(func.pg_try_advisory_lock(key))))
        await connection.commit()
        try:
            yield held
        finally:
            if held:
                await connection.scalar(select(func.pg_advisory_unlock(key)))
                await connection.commit()


async def run_periodically(
    name: str,
    interval_seconds: float,
    job: Callable[[], Awaitable[object]],
    stop: asyncio.Event | None = None,
    wake: asyncio.Event | None = None,
) -> None:
    """Run `job` every `interval_seconds`, and at once when `wake` is set, until `stop` is set.

    A failure is logged, not fatal. Setting `stop` ends the loop at once while it waits, and
    after the run in hand while a job runs, so shutdown neither waits out an interval nor
    cuts a job in half. A wake during a run brings the next run forward to right after it.
    """
    stop = stop or asyncio.Event()
    while not stop.is_set():
        await _first_of(stop, wake, timeout=interval_seconds)
        if stop.is_set():
            return
        if wake is not None:
            wake.clear()
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            _logger.exception("scheduled job failed", extra={"job": name})


async def _first_of(stop: asyncio.Event, wake: asyncio.Event | None, *, timeout: float) -> None:
    if wake is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=timeout)
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
