"""How a `ReadCache` hears of changes on PostgreSQL: other processes' and this process's writes.

The protocol, which the triggers of a service's migration speak (profile-service's
``2026_12_07d-customer_360_changes_by_customer`` is one):

- after each writing statement on a table the bodies are read from, a statement-level trigger
  sends ``NOTIFY <channel>`` with the keys the statement touched as a JSON array of strings
  (several notices when they do not fit in one payload), or with an empty payload meaning
  every key (a TRUNCATE, or a statement touching more keys than are worth naming);
- when the session has ``crm.read_cache_notices = 'on'``, the same trigger also raises a
  ``NOTICE`` whose message is the channel and whose detail is that payload. The pool's
  connections of a process keeping reads switch it on, so a statement tells its own session,
  at once, which keys it touched: that is how this process's writes invalidate exactly their
  keys, synchronously, without waiting for the NOTIFY to come back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_shared._read_cache import ReadCache, ReadCacheMetrics
from crm_shared._runtime import ServiceRuntime

_log = logging.getLogger(__name__)
_WROTE = "crm_shared.read_cache.wrote"
_HEARD = "crm_shared.read_cache.heard"  # a connection's _HeardChanges, in its record
_RECONNECT_SECONDS = 1.0
NOTICES_SETTING = "crm.read_cache_notices"


def changed_keys(payload: str | None) -> list[str] | None:
    """The keys a change notice names; None when it names every key (or cannot be read)."""
    if not payload:
        return None
    try:
        keys = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        return None
    return keys


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
            invalidate_on_local_writes(engine, channel, cache)
            listening = follow_changes(engine, channel, cache, runtime.stopping)
            runtime.background(asyncio.create_task(listening, name=f"listen {channel}"))
        try:
            yield
        finally:
            runtime.metrics.registry.unregister(collector)

    return start


@dataclass
class _HeardChanges:
    """What one pooled connection's statements said they touched since it was checked out."""

    keys: dict[str, set[str]] = field(default_factory=dict)  # by channel
    everything: set[str] = field(default_factory=set)  # channels whose every key changed

    def on_notice(self, _connection: object, message: Any) -> None:
        # asyncpg schedules this (call_soon) as it reads the notice, which comes before the
        # statement's completion: it runs before the statement's caller resumes, so before
        # the connection can be checked in.
        channel = getattr(message, "message", None)
        if not isinstance(channel, str):
            return
        keys = changed_keys(getattr(message, "detail", None))
        if keys is None:
            self.everything.add(channel)
        else:
            self.keys.setdefault(channel, set()).update(keys)


# The caches following each engine's writes, by channel. The pool's event listeners are
# registered once per engine, when its first cache starts: adding one while another
# coroutine is inside a listener of the same event (one that awaits, as a connection's
# set-up does) would change the list it is walking.
_FOLLOWERS: weakref.WeakKeyDictionary[Engine, dict[str, ReadCache]] = weakref.WeakKeyDictionary()


def invalidate_on_local_writes(engine: AsyncEngine, channel: str, cache: ReadCache) -> None:
    """Invalidate in `cache` what a connection of `engine` wrote, when it is returned.

    The return to the pool comes after its COMMIT (or ROLLBACK), and before the request that
    wrote answers. Each connection, at its first checkout, listens to its triggers' notices
    (see the module's docstring) and the keys they name are invalidated; a connection that
    could not be set up so empties the whole cache if it ran anything but a SELECT: a spare
    emptying costs only hits, a missed one would serve a stale body until the NOTIFY arrives.
    """
    followers = _FOLLOWERS.get(engine.sync_engine)
    if followers is not None:
        followers[channel] = cache
        return
    followers = _FOLLOWERS[engine.sync_engine] = {channel: cache}

    @event.listens_for(engine.sync_engine, "checkout")
    def _hear_notices(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if _HEARD in record.info:
            return
        heard = _HeardChanges()

        async def switch_on(driver: Any) -> None:
            await driver.execute(f"SELECT set_config('{NOTICES_SETTING}', 'on', false)")
            driver.add_log_listener(heard.on_notice)

        dbapi_connection.run_async(switch_on)
        record.info[_HEARD] = heard

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
        if record is None:
            return
        wrote = record.info.pop(_WROTE, False)
        heard: _HeardChanges | None = record.info.get(_HEARD)
        if heard is None:
            if wrote:
                for cache in followers.values():
                    cache.invalidate()
            return
        for channel in heard.everything:
            if channel in followers:
                followers[channel].invalidate()
        for channel, keys in heard.keys.items():
            if channel in followers and channel not in heard.everything:
                followers[channel].invalidate_keys(keys)
        if heard.keys or heard.everything:
            heard.keys, heard.everything = {}, set()


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

    def on_notice(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        keys = changed_keys(payload)
        if keys is None:
            cache.invalidate()
        else:
            cache.invalidate_keys(keys)

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
