"""Hot read bodies kept per process, forgotten key by key when what they were read from changes.

A customer 360 under load costs a database round trip per read: on two cores the driver's
protocol and PostgreSQL's own work per read are worth more than the whole HTTP stack
(bench/RESULTS.md). ``ReadCache`` keeps the finished bodies by an opaque key (the 360 keeps
them by customer id) and forgets the keys a change names, from any process (see
`crm_shared._read_cache_changes` for how changes are heard):

- PostgreSQL triggers on the tables the bodies are read from ``NOTIFY`` a channel with the keys
  each writing statement touched (delivered at commit), or with an empty payload meaning every
  key (a statement touching too many). While that channel is not heard, nothing is cached.
- This process's own writes forget their keys synchronously, after the commit and before the
  write answers: a client reads its own write on the same process without waiting.
- A body computed from a snapshot older than an invalidation of its key (or of every key) is
  never stored (the generation check in `put`), and every entry expires within
  ``ttl_seconds`` whatever happens, which bounds how stale a body can be if a notice is ever
  lost without the connection breaking.

Forgetting by key matters under a steady write stream: emptied whole on every consumer batch,
the cache held almost nothing and the 360 fell back to the database (bench/RESULTS.md, "Customer
360 reads under an order stream").

On SQLite (one process, no LISTEN) the cache stays off.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Keys invalidated recently, remembered so that a read in flight across their invalidation is
# not stored. Reads take milliseconds; past this many the memory is dropped and every read in
# flight is refused instead (a few misses more, never a stale body).
_REMEMBERED_INVALIDATIONS = 50_000


class ReadCache:
    """Finished bodies by key, valid while nothing they were read from has changed."""

    def __init__(self, *, ttl_seconds: float, max_entries: int) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, bytes]] = {}
        # Every invalidation takes the next generation. A read takes the current one before it
        # goes to the database; its body is stored only if neither its key (`_invalidated`)
        # nor every key (`_floor`) was invalidated after that.
        self._generation = 0
        self._floor = 0
        self._invalidated: dict[str, int] = {}
        self._listening = False
        # Plain counts, exported by `ReadCacheMetrics` when scraped: nothing per read but +1.
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        self.key_invalidations = 0

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
        """Keep `body` unless its key changed since `since` was taken (or caching is off)."""
        if since is None or since < self._floor or not self.enabled:
            return
        if self._invalidated.get(key, since) > since:
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
        self._floor = self._generation
        self._invalidated.clear()
        self.invalidations += 1
        self._entries.clear()

    def invalidate_keys(self, keys: Iterable[str]) -> None:
        """Forget the bodies of `keys`, and any of theirs being read right now."""
        self._generation += 1
        generation, entries, invalidated = self._generation, self._entries, self._invalidated
        for key in keys:
            entries.pop(key, None)
            invalidated[key] = generation
            self.key_invalidations += 1
        if len(invalidated) > _REMEMBERED_INVALIDATIONS:
            invalidated.clear()
            self._floor = generation  # refuse every read in flight rather than remember more

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
            "read_cache_invalidations", "Times the cache was emptied whole", labels=["cache"]
        )
        emptied.add_metric([self._name], cache.invalidations)
        forgotten = CounterMetricFamily(
            "read_cache_key_invalidations",
            "Keys invalidated one by one (a change naming them)",
            labels=["cache"],
        )
        forgotten.add_metric([self._name], cache.key_invalidations)
        held = GaugeMetricFamily("read_cache_entries", "Bodies held", labels=["cache"])
        held.add_metric([self._name], len(cache))
        return [lookups, emptied, forgotten, held]
