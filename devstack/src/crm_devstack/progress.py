"""Knowing when the running stack has caught up, from the services' own Prometheus counters.

Every service counts the events it consumed (``events_processed_total`` by topic) and the
events its outbox published (``outbox_published_total`` by topic). When a consumer has
processed as many events of a topic as were published to it, it has caught up with that
topic; when a service's ``outbox_pending`` is zero, everything it decided is on its way. The
counters start at zero with each process, which is what a freshly started stack needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

_T = TypeVar("_T")
_POLL_SECONDS = 0.25


class NotCaughtUp(TimeoutError):
    """A wait ran out of time; the message says what was awaited and what was seen last."""


@dataclass(frozen=True)
class EventCounts:
    """What one service consumed and published so far, by topic."""

    processed: dict[str, float]
    published: dict[str, float]
    outbox_pending: float

    def processed_of(self, topic: str) -> int:
        """Events of `topic` consumed: applied, recognised as duplicates or dead-lettered."""
        return int(self.processed.get(topic, 0.0))

    def published_to(self, topic: str) -> int:
        """Events this service's outbox published to `topic`."""
        return int(self.published.get(topic, 0.0))


def event_counts(client: httpx.Client, base_url: str) -> EventCounts:
    """Read a service's ``/metrics`` (no key needed) into `EventCounts`."""
    response = client.get(f"{base_url}/metrics")
    response.raise_for_status()
    processed: dict[str, float] = {}
    published: dict[str, float] = {}
    pending = 0.0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "events_processed_total":
                topic = sample.labels["topic"]
                processed[topic] = processed.get(topic, 0.0) + sample.value
            elif sample.name == "outbox_published_total":
                published[sample.labels["topic"]] = sample.value
            elif sample.name == "outbox_pending":
                pending = sample.value
    return EventCounts(processed, published, pending)


def wait_until(
    probe: Callable[[], _T | None],
    *,
    timeout: float,
    what: str,
    last_seen: Callable[[], str] | None = None,
) -> _T:
    """Call `probe` until it returns something other than None, and return that.

    Raises `NotCaughtUp` naming `what` (and `last_seen()`, when given) after `timeout` s.
    """
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            seen = f"; last seen: {last_seen()}" if last_seen is not None else ""
            raise NotCaughtUp(f"{what}: not within {timeout:.0f} s{seen}")
        time.sleep(_POLL_SECONDS)


def wait_for_processed(
    client: httpx.Client, base_url: str, topic: str, expected: int, *, timeout: float, who: str
) -> EventCounts:
    """Wait until the service at `base_url` consumed at least `expected` events of `topic`."""
    seen: list[int] = [0]

    def caught_up() -> EventCounts | None:
        counts = event_counts(client, base_url)
        seen[0] = counts.processed_of(topic)
        return counts if seen[0] >= expected else None

    return wait_until(
        caught_up,
        timeout=timeout,
        what=f"{who} consuming {expected} events of {topic}",
        last_seen=lambda: f"{seen[0]} consumed",
    )


def wait_until_idle(
    client: httpx.Client,
    urls: Mapping[str, str],
    *,
    published_from_outside: Mapping[str, int] | None = None,
    timeout: float,
    quiet: float = 1.0,
) -> dict[str, EventCounts]:
    """Wait until the services at `urls` (by name) have consumed every event published so far
    and nothing has moved for `quiet` seconds; return the counts they settled at.

    Published: what the services' outboxes published, plus `published_from_outside` (events a
    test or the demo wrote to a topic itself). A service is held to a topic once it has
    consumed any of it; the quiet period covers a consumer that has not started on a topic yet.
    """
    outside = dict(published_from_outside or {})
    previous: list[tuple[float, dict[str, EventCounts]]] = []
    behind: list[str] = []

    def idle() -> dict[str, EventCounts] | None:
        counts = {name: event_counts(client, url) for name, url in urls.items()}
        published = dict(outside)
        for service in counts.values():
            for topic, count in service.published.items():
                published[topic] = published.get(topic, 0) + int(count)
        behind[:] = [
            f"{name} consumed {service.processed_of(topic)} of {total} on {topic}"
            for name, service in counts.items()
            for topic, total in published.items()
            if topic in service.processed and service.processed_of(topic) < total
        ]
        now = time.monotonic()
        if behind or not previous or previous[0][1] != counts:
            previous[:] = [(now, counts)]
            return None
        return counts if now - previous[0][0] >= quiet else None

    return wait_until(
        idle,
        timeout=timeout,
        what="the services catching up with each other",
        last_seen=lambda: "; ".join(behind) or "still moving",
    )
