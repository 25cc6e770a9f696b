"""Reads by key that arrive together go to the database together: one statement per batch.

Once FastAPI's routing was out of a customer 360's miss, a third of what was left was the
driver's round trip: encoding, the socket send that wakes PostgreSQL, the reply's wake-up
(bench/RESULTS.md). Under concurrent load many misses are waiting at the same moment, each for
its own round trip. `KeyedBatches` collects the keys asked for during one turn of the event
loop and hands them to one `fetch`, so that a batch of k reads pays one round trip, one
statement start in PostgreSQL and one pool checkout instead of k.

Every read still sees a snapshot taken after it was asked for: a batch is sent only after each
of its keys was asked for, and a key asked for while a batch holding it is already on its way
waits for the next batch rather than joining one that may have started before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

Fetch = Callable[[Sequence[str]], Awaitable[Mapping[str, T]]]
"""Reads every key given in one go; a key it does not return has nothing (None)."""


class KeyedBatches(Generic[T]):
    """Lookups by key coalesced per event-loop turn into calls of `fetch` (see the module)."""

    def __init__(self, fetch: Fetch[T], *, max_keys: int = 100) -> None:
        self._fetch = fetch
        self._max_keys = max_keys
        self._waiting: dict[str, asyncio.Future[T | None]] = {}
        self._running: set[asyncio.Task[None]] = set()  # batches on their way, kept referenced
        self.batches = 0
        self.keys = 0

    async def get(self, key: str) -> T | None:
        """What `fetch` found for `key` in the next batch; its exception if the batch failed."""
        future = self._waiting.get(key)
        if future is None:
            loop = asyncio.get_running_loop()
            future = self._waiting[key] = loop.create_future()
            if len(self._waiting) == 1:
                # Runs after every request already woken in this turn has asked for its key.
                loop.call_soon(self._send)
            elif len(self._waiting) >= self._max_keys:
                self._send()
        # Several requests may wait for one key: one of them going away (a client that
        # disconnects) must not cancel the answer for the others.
        return await asyncio.shield(future)

    def _send(self) -> None:
        waiting, self._waiting = self._waiting, {}
        if not waiting:
            return
        task = asyncio.get_running_loop().create_task(self._run(waiting))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, waiting: dict[str, asyncio.Future[T | None]]) -> None:
        self.batches += 1
        self.keys += len(waiting)
        try:
            found = await self._fetch(list(waiting))
        except asyncio.CancelledError:
            for future in waiting.values():
                future.cancel()
            raise
        except Exception as error:  # the reads' failure: each request answers it as its own
            for future in waiting.values():
                if not future.done():
                    future.set_exception(error)
            return
        for key, future in waiting.items():
            if not future.done():
                future.set_result(found.get(key))
