"""Synthetic purchase histories drawn from known BG/NBD and Gamma-Gamma parameters, and a
ledger of them copied into scoring-service's database.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import numpy as np

from scoring_service.domain.bg_nbd import (
    BgNbdParameters,
)
from scoring_service.domain.gamma_gamma import (
    GammaGammaParameters,
)

DAYS_PER_WEEK = 7.0


# The published CDNOW estimates (weeks, dollars) as the true parameters of the synthetic base.
TRUE_BG = BgNbdParameters(r=0.243, alpha=4.414, a=0.793, b=2.426)


TRUE_GG = GammaGammaParameters(p=6.25, q=3.74, v=15.44)


ACQUISITION_DAYS = 730  # first purchases spread over the two years before the as-of date


@dataclass(frozen=True)
class Customers:
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    zbar: np.ndarray


def simulate(customers: int, seed: int) -> Customers:
    """BG/NBD purchases and Gamma-Gamma amounts for `customers` customers, times in whole days.

    While alive, purchases are Poisson(lambda); N ~ Poisson(lambda T) purchases would happen by T,
    and the customer leaves right after the K-th repeat purchase, K ~ Geometric(p). So x = min(N,
    K) and, N events being uniform on [0, T], the x-th of them falls at T * Beta(x, N - x + 1).
    Same-day purchases are rare at these rates and are not merged; a repeat purchase on the day of
    the first one gives t_x = 0 with x > 0, which the models accept.
    """
    rng = np.random.default_rng(seed)
    T_days = rng.integers(0, ACQUISITION_DAYS, customers).astype(np.float64)
    rate_per_day = rng.gamma(TRUE_BG.r, 1.0 / TRUE_BG.alpha, customers) / DAYS_PER_WEEK
    dropout = np.maximum(rng.beta(TRUE_BG.a, TRUE_BG.b, customers), 1e-12)
    possible = rng.poisson(rate_per_day * T_days)
    x = np.minimum(possible, rng.geometric(dropout))
    repeat = x > 0
    last = np.zeros(customers)
    last[repeat] = T_days[repeat] * rng.beta(x[repeat], possible[repeat] - x[repeat] + 1)
    t_x_days = np.floor(last)
    nu = rng.gamma(TRUE_GG.q, 1.0 / TRUE_GG.v, customers)
    zbar = np.zeros(customers)
    zbar[repeat] = np.round(rng.gamma(TRUE_GG.p * x[repeat], 1.0 / (nu[repeat] * x[repeat])), 2)
    zbar[repeat] = np.maximum(zbar[repeat], 0.01)
    return Customers(
        x=x.astype(np.float64),
        t_x=t_x_days / DAYS_PER_WEEK,
        T=T_days / DAYS_PER_WEEK,
        zbar=zbar,
    )


def synthetic_ledger(customers: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer index, purchase day, amount) per order, last purchases up to AS_OF_DAY."""

    base = simulate(customers, seed)
    repeats = base.x.astype(np.int64)
    age = np.round(base.T * DAYS_PER_WEEK).astype(np.int64)
    span = np.round(base.t_x * DAYS_PER_WEEK).astype(np.int64)
    first = AS_OF_DAY - age
    orders = repeats + 1
    customer = np.repeat(np.arange(customers), orders)
    position = np.arange(len(customer)) - np.repeat(np.cumsum(orders) - orders, orders)
    rng = np.random.default_rng(seed + 1)
    between = np.floor(rng.random(len(customer)) * (span[customer] + 1)).astype(np.int64)
    last = position == orders[customer] - 1
    offset = np.where(position == 0, 0, np.where(last, span[customer], between))
    first_amount = np.round(rng.gamma(2.0, 20.0, len(customer)), 2) + 1.0
    amount = np.where(position == 0, first_amount, np.maximum(base.zbar[customer], 0.01))
    return customer, first[customer] + offset, amount


def customer_id(index: int) -> str:
    return f"bench-{index:08d}"


async def copy_ledger(dsn: str, customers: int, seed: int) -> int:
    """COPY the synthetic orders into `purchases`; the number of orders."""
    customer, day, amount = synthetic_ledger(customers, seed)
    buffer = io.BytesIO()
    lines = (
        f"o{i},{customer_id(c)},{datetime.fromtimestamp(d * 86_400 + 43_200, UTC).isoformat()},"
        f"{d},{a:.2f},0,false\n"
        for i, (c, d, a) in enumerate(
            zip(customer.tolist(), day.tolist(), amount.tolist(), strict=True)
        )
    )
    buffer.write("".join(lines).encode())
    buffer.seek(0)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.copy_to_table(
            "purchases",
            source=buffer,
            format="csv",
            columns=[
                "order_id",
                "customer_id",
                "placed_at",
                "purchase_day",
                "amount",
                "refunded",
                "cancelled",
            ],
        )
        await connection.execute("analyze purchases")
        await summarise_copied_orders(connection)
    finally:
        await connection.close()
    return len(customer)


async def summarise_copied_orders(connection: asyncpg.Connection) -> None:
    """The COPY bypassed the intake, but not the triggers that mark customers' purchase
    summaries stale (scoring-service from migration 2026_12_09b): derive them all now, as the
    migration's backfill does, so a fit starts from summaries as a running service keeps them."""
    if not await connection.fetchval("select to_regclass('stale_purchase_summaries') is not null"):
        return
    # Imported here: the per-step split runs this module with older trees, which lack it.
    from scoring_service.workflows.purchase_summaries import REFRESH_TOUCHED

    start = time.perf_counter()
    customers = await connection.fetchval(REFRESH_TOUCHED)
    await connection.execute("vacuum analyze purchase_summaries")
    await connection.execute("vacuum analyze stale_purchase_summaries")
    seconds = time.perf_counter() - start
    print(f"purchase summaries of {customers:,} customers derived in {seconds:.1f} s", flush=True)


AS_OF_DAY = 20_000  # 2024-10-04: the synthetic base's as-of day
