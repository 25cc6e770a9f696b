"""A service's health as the Today page's strip shows it, from its /readyz and /metrics."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{.*\})?\s+(?P<value>\S+)")

# The metrics the strip shows (crm_shared's ServiceMetrics names them).
DEAD_LETTERS = "dead_letters_total"
OUTBOX_PENDING = "outbox_pending"
OUTBOX_OLDEST_AGE = "outbox_oldest_unsent_age_seconds"
OUTBOX_PARKED = "outbox_parked_rows"


def metric_totals(exposition: str) -> dict[str, float]:
    """Each metric's value summed over its labels, from Prometheus text exposition."""
    totals: dict[str, float] = defaultdict(float)
    for line in exposition.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None:
            continue  # a comment, a blank line or something unreadable
        try:
            totals[sample["name"]] += float(sample["value"])
        except ValueError:
            continue
    return dict(totals)


@dataclass(frozen=True)
class ServiceHealth:
    """What the strip says about one service."""

    service: str
    ready: bool | None  # None: the service did not answer
    dead_letters: int
    outbox_pending: int
    outbox_oldest_seconds: float
    outbox_parked: int

    @property
    def stuck(self) -> bool:
        """Whether events wait in the outbox: parked rows, or an unsent one older than a minute."""
        return self.outbox_parked > 0 or self.outbox_oldest_seconds > 60


def service_health(service: str, ready: bool | None, exposition: str | None) -> ServiceHealth:
    """The strip's figures for `service` (zeros when its metrics could not be read)."""
    totals = metric_totals(exposition or "")
    return ServiceHealth(
        service=service,
        ready=ready,
        dead_letters=int(totals.get(DEAD_LETTERS, 0)),
        outbox_pending=int(totals.get(OUTBOX_PENDING, 0)),
        outbox_oldest_seconds=totals.get(OUTBOX_OLDEST_AGE, 0.0),
        outbox_parked=int(totals.get(OUTBOX_PARKED, 0)),
    )
