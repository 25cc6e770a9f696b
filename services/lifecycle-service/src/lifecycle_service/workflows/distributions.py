"""How the base spreads over predicted 12-month CLV and churn risk: histograms counted in SQL.

The figures are lifecycle-service's copies of the latest scores (each customer's row holds
them), so the histograms over the whole base are grouped queries, not a read of every customer.
Both values are never negative, so the bin is the floor of ``x * bins / top``: ``FLOOR`` on
PostgreSQL (whose CAST to an integer rounds), ``CAST`` on SQLite (which truncates, and may
lack FLOOR).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Integer, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from lifecycle_service.db.models import CustomerLifecycleRow


@dataclass(frozen=True)
class Histogram:
    """Counts in equal-width bins from 0 to `top`; the last bin includes `top`."""

    top: float
    counts: list[int]
    missing: int  # customers without the figure (not scored yet)

    @property
    def edges(self) -> list[float]:
        """The bins' bounds: bins + 1 of them."""
        width = self.top / len(self.counts)
        return [round(i * width, 6) for i in range(len(self.counts) + 1)]


@dataclass(frozen=True)
class Distributions:
    """The base by predicted 12-month CLV and by churn risk."""

    predicted_clv_12m: Histogram
    churn_risk: Histogram


async def distributions(session: AsyncSession, bins: int) -> Distributions:
    """Both histograms in two passes over the customers: the missing counts and the largest
    CLV, then one grouped count over both bins (at most ``(bins + 1)^2`` groups, summed here
    per figure), so the page showing them waits on two scans, not four."""
    clv, risk = CustomerLifecycleRow.predicted_clv_12m, CustomerLifecycleRow.churn_risk
    total, with_clv, with_risk, largest_clv = (
        await session.execute(
            select(func.count(), func.count(clv), func.count(risk), func.max(clv))
        )
    ).one()
    clv_top = float(largest_clv or 0.0)
    sqlite = session.get_bind().dialect.name == "sqlite"
    clv_bin = _bin(clv, bins, clv_top, sqlite=sqlite)
    risk_bin = _bin(risk, bins, 1.0, sqlite=sqlite)
    rows = await session.execute(
        select(clv_bin, risk_bin, func.count()).group_by(clv_bin, risk_bin)
    )
    clv_counts, risk_counts = [0] * bins, [0] * bins
    for clv_index, risk_index, count in rows.all():
        if clv_index is not None:
            clv_counts[min(max(int(clv_index), 0), bins - 1)] += count
        if risk_index is not None:
            risk_counts[min(max(int(risk_index), 0), bins - 1)] += count
    return Distributions(
        predicted_clv_12m=Histogram(clv_top, clv_counts, int(total) - int(with_clv)),
        churn_risk=Histogram(1.0, risk_counts, int(total) - int(with_risk)),
    )


def _bin(
    column: InstrumentedAttribute[float | None], bins: int, top: float, *, sqlite: bool
) -> ColumnElement[int | None]:
    """The bin of `column` (null where the figure is); every value in bin 0 when top is 0."""
    if top <= 0:
        return case((column.is_(None), None), else_=0)
    scaled = column * bins / top
    return cast(scaled, Integer) if sqlite else cast(func.floor(scaled), Integer)
