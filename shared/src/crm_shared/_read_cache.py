"""Hot read bodies kept per process, emptied whenever the tables under them may have changed.

A customer 360 under load costs a database round trip per read: on two cores the driver's
protocol and PostgreSQL's own work per read are worth more than the whole HTTP stack
(bench/RESULTS.md). ``ReadCache`` keeps the finished bodies and forgets all of them whenever a
table they are read from changes, from any process:

- PostgreSQL triggers on those tables ``NOTIFY`` a channel after every writing statement
  (delivered at commit); `follow_changes` LISTENs on a connection of its own and empties the
  cache on each notice. While that connection is not listening, nothing is cached.
- This process's own writes empty it too, synchronously, when the writing connection goes
  back to the pool (after its commit), before the write's HTTP answer is sent: a client reads
  its own write on the same process without waiting for the notice.
- A body computed from a snapshot older than an invalidation is never stored (the generation
  check in `put`), and every entry expires within ``ttl_seconds`` whatever happens, which bounds
  how stale a body can be if a notice is ever lost without the connection breaking.

On SQLite (one process, no LISTEN) the cache stays off.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared._runtime import ServiceRuntime

_log = logging.getLogger(__name__)
_WROTE = "crm_shared.read_cache.wrote"
_RECONNECT_SECONDS = 1.0


class ReadCache:
    """Finished bodies by key, valid while no table they were read from has changed."""

    def __init__(self, *, ttl_seconds: float, max_entries: int) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._generation = 0
        self._listening = False
        # Plain counts, exported by `ReadCacheMetrics` when scraped: nothing per read but +1.
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    @property
    def enabled(self) -> bool:
        """Whether bodies are kept: switched on and told about every change."""
        return self._listening and self.ttl_seconds > 0 and self.max_entries > 0

    def get(self, key: str) -> bytes | None:
        """The body stored for `key` if it has not expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        self.hits += 1
        return entry[1]

    def generation(self) -> int | None:
        """Take this before reading the database (a miss); hand it to `put`. None while
        nothing may be stored."""
        self.misses += 1
        return self._generation if self.enabled else None

    def put(self, key: str, body: bytes, since: int | None) -> None:
        """Keep `body` unless anything changed since `since` was taken (or caching is off)."""
        if since is None or since != self._generation or not self.enabled:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))  # the oldest stored
        # Each entry lives a random 50-100% of the TTL: bodies read in one burst (a warm-up,
        # a hot list) would otherwise all expire together and go to the database in a burst
        # that stalls every request in flight behind it.
        lifetime = self.ttl_seconds * (0.5 + 0.5 * random.random())
        self._entries[key] = (time.monotonic() + lifetime, body)

    def __len__(self) -> int:
        return len(self._entries)

    def invalidate(self) -> None:
        """Forget every body, and any body being read right now."""
        self._generation += 1
        self.invalidations += 1
        self._entries.clear()

    def set_listening(self, listening: bool) -> None:
        """Whether changes from other processes are heard; storing stops while they are not."""
        self.invalidate()
        self._listening = listening


class ReadCacheMetrics(Collector):
    """Exports a cache's counts on scrape: lookups by outcome, emptyings, entries held."""

    def __init__(self, name: str, cache: ReadCache) -> None:
        self._name = name
        self._cache = cache

    def collect(self) -> Iterable[Metric]:
        """The metric families, read from the cache's counts."""
        cache = self._cache
        lookups = CounterMetricFamily(
            "read_cache_lookups", "Cached reads by outcome", labels=["cache", "outcome"]
        )
        lookups.add_metric([self._name, "hit"], cache.hits)
        lookups.add_metric([self._name, "miss"], cache.misses)
        emptied = CounterMetricFamily(
            "read_cache_invalidations", "Times the cache was emptied", labels=["cache"]
        )
        emptied.add_metric([self._name], cache.invalidations)
        held = GaugeMetricFamily("read_cache_entries", "Bodies held", labels=["cache"])
        held.add_metric([self._name], len(cache))
        return [lookups, emptied, held]


def keeping_reads(
    cache: ReadCache, channel: str
) -> Callable[[FastAPI, ServiceRuntime], AbstractAsyncContextManager[None]]:
    """A start hook: on PostgreSQL, `cache` follows `channel` and this process's writes;
    its counts join the service's metrics under the channel's name.

    Elsewhere (SQLite) it does nothing, so the cache stays off.
    """

    @asynccontextmanager
    async def start(_app: FastAPI, runtime: ServiceRuntime) -> AsyncIterator[None]:
        collector = ReadCacheMetrics(channel, cache)
        runtime.metrics.registry.register(collector)
        engine = runtime.engine
        if engine.dialect.name == "postgresql" and cache.ttl_seconds > 0:
            invalidate_on_local_writes(engine, cache)
            listening = follow_changes(engine, channel, cache, runtime.stopping)
            runtime.background(asyncio.create_task(listening, name=f"listen {channel}"))
        try:
            yield
        finally:
            runtime.metrics.registry.unregister(collector)

    return start


def invalidate_on_local_writes(engine: AsyncEngine, cache: ReadCache) -> None:
    """Empty `cache` when a connection of `engine` that ran a writing statement is returned.

    The return to the pool comes after its COMMIT (or ROLLBACK), and before the request that
    wrote answers. Any statement that is not a SELECT counts as writing: a spare emptying costs
    only hits, a missed one would serve a stale body until the notice arrives.
    """

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _flag_writes(
        connection: Any,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        _context: Any,
        _executemany: bool,
    ) -> None:
        if not statement.lstrip()[:6].upper().startswith("SELECT"):
            connection.info[_WROTE] = True

    @event.listens_for(engine.sync_engine, "checkin")
    def _after_writes(_dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(_WROTE, False):
            cache.invalidate()


async def follow_changes(
    engine: AsyncEngine, channel: str, cache: ReadCache, stop: asyncio.Event
) -> None:
    """LISTEN on `channel` until `stop` is set; the cache stores only while this listens.

    The connection is taken from the engine's pool and kept out of it (so it has the
    engine's URL, TLS and driver settings). When it breaks the cache is switched off and
    emptied at once, and the loop connects again.
    """
    while not stop.is_set():
        try:
            await _listen(engine, channel, cache, stop)
        except Exception:  # the database is away: retry, caching nothing meanwhile
            _log.warning("read cache: cannot listen on %s; retrying", channel, exc_info=True)
        if not stop.is_set():
            await _wait_either(stop, asyncio.Event(), _RECONNECT_SECONDS)


async def _listen(engine: AsyncEngine, channel: str, cache: ReadCache, stop: asyncio.Event) -> None:
    # One connection's life: listening until it breaks or `stop` is set.
    lost = asyncio.Event()
    driver: Any = None

    def on_notice(*_: object) -> None:
        cache.invalidate()

    def on_lost(*_: object) -> None:
        cache.set_listening(False)
        lost.set()

    try:
        pooled = await engine.raw_connection()
        driver = pooled.driver_connection  # an asyncpg.Connection
        pooled.detach()  # this process's listener from now on, never handed to a read
        driver.add_termination_listener(on_lost)
        await driver.add_listener(channel, on_notice)
        cache.set_listening(True)
        # The termination listener covers a closed socket; the check covers a connection
        # asyncpg marked closed without calling it.
        while not (stop.is_set() or lost.is_set() or driver.is_closed()):
            await _wait_either(stop, lost, _RECONNECT_SECONDS)
    finally:
        cache.set_listening(False)
        if driver is not None and not driver.is_closed():
            await _close_quietly(driver)


async def _wait_either(first: asyncio.Event, second: asyncio.Event, timeout: float) -> None:
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def _close_quietly(driver: Any) -> None:
    try:
        await asyncio.wait_for(driver.close(), timeout=5)
    except Exception:
        driver.terminate()
