"""How the base spreads over predicted 12-month CLV and churn risk: histograms counted in SQL.

The figures are lifecycle-service's copies of the latest scores (each customer's row holds
them), so a histogram over the whole base is one grouped query, not a read of every customer.
Both values are never negative, so the bin is the floor of ``x * bins / top``: ``FLOOR`` on
PostgreSQL (whose CAST to an integer rounds), ``CAST`` on SQLite (which truncates, and may
lack FLOOR).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Integer, cast, func, select
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


async def histogram(
    session: AsyncSession,
    column: InstrumentedAttribute[float | None],
    bins: int,
    top: float | None = None,
) -> Histogram:
    """The histogram of `column` over every customer; `top` defaults to the largest value."""
    present = column.is_not(None)
    # The customers without the figure and the largest value in one pass over the table.
    missing, largest = (
        await session.execute(select(func.count() - func.count(column), func.max(column)))
    ).one()
    missing = int(missing or 0)
    if top is None:
        top = float(largest or 0.0)
    counts = [0] * bins
    if top <= 0:
        total = await session.scalar(select(func.count()).where(present)) or 0
        counts[0] = total
        return Histogram(top=0.0, counts=counts, missing=missing)
    scaled = column * bins / top
    if session.get_bind().dialect.name == "sqlite":
        bucket = cast(scaled, Integer)
    else:
        bucket = cast(func.floor(scaled), Integer)
    rows = await session.execute(select(bucket, func.count()).where(present).group_by(bucket))
    for index, count in rows.all():
        counts[min(max(int(index), 0), bins - 1)] += count
    return Histogram(top=top, counts=counts, missing=missing)


async def clv_histogram(session: AsyncSession, bins: int) -> Histogram:
    """Customers by predicted 12-month CLV."""
    return await histogram(session, CustomerLifecycleRow.predicted_clv_12m, bins)


async def churn_risk_histogram(session: AsyncSession, bins: int) -> Histogram:
    """Customers by churn risk, from 0 to 1."""
    return await histogram(session, CustomerLifecycleRow.churn_risk, bins, top=1.0)
