"""Loading the ledger: the whole-ledger fast path (PostgreSQL: arrays from asyncpg) and the
per-customer path give the orders the models count, with net amounts, on both databases."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crm_shared.testing import ApiClient
from scoring_service.db.models import Purchase
from scoring_service.workflows.ledger_loading import LoadedLedger, load_ledger


def some_purchases(seed: int = 7) -> list[Purchase]:
    """Orders of every kind: cancelled, refunded in full or in part, free, not yet placed."""
    rng = random.Random(seed)
    purchases = []
    for number in range(400):
        amount = Decimal(rng.randrange(0, 10**7)) / 10_000  # four decimals, as stored
        kind = rng.choice(["plain", "plain", "cancelled", "refunded", "partly", "free", "unplaced"])
        refunded = {"refunded": amount, "partly": amount / 3}.get(kind, Decimal(0))
        day = 19_000 + rng.randrange(0, 700)
        purchases.append(
            Purchase(
                order_id=f"o-{number}",
                customer_id=f"c-{rng.randrange(0, 60):03d}-{'é' if number % 5 == 0 else 'e'}",
                placed_at=None if kind == "unplaced" else datetime.fromtimestamp(day * 86_400, UTC),
                purchase_day=None if kind == "unplaced" else day,
                amount=Decimal(0) if kind == "free" else amount,
                refunded=refunded.quantize(Decimal("0.0001")),
                cancelled=kind == "cancelled",
            )
        )
    return purchases


def expected_orders(purchases: list[Purchase]) -> list[tuple[str, int, float]]:
    kept = [
        p
        for p in purchases
        if p.placed_at is not None
        and not p.cancelled
        and (p.refunded == 0 or p.amount - p.refunded > 0)
    ]
    return sorted((p.customer_id, p.purchase_day, float(p.amount - p.refunded)) for p in kept)


def orders_of(loaded: LoadedLedger) -> list[tuple[str, int, float]]:
    ledger = loaded.ledger
    return sorted(
        (loaded.customer_ids[c], d, a)
        for c, d, a in zip(
            ledger.customer.tolist(), ledger.day.tolist(), ledger.amount.tolist(), strict=True
        )
    )


def purchase_days(
    orders: list[tuple[str, int, float]], counts: list[int] | None = None
) -> dict[tuple[str, int], tuple[int, float]]:
    """Orders merged per (customer, day): how many, and their summed net amount."""
    days: dict[tuple[str, int], tuple[int, float]] = {}
    for (customer, day, amount), count in zip(orders, counts or [1] * len(orders), strict=True):
        seen, total = days.get((customer, day), (0, 0.0))
        days[customer, day] = (seen + count, total + amount)
    return days


def days_of(loaded: LoadedLedger) -> dict[tuple[str, int], tuple[int, float]]:
    ledger = loaded.ledger
    rows = [
        (loaded.customer_ids[c], d, a)
        for c, d, a in zip(
            ledger.customer.tolist(), ledger.day.tolist(), ledger.amount.tolist(), strict=True
        )
    ]
    counts = None if ledger.orders is None else ledger.orders.tolist()
    return purchase_days(rows, counts)


def assert_same_days(
    got: dict[tuple[str, int], tuple[int, float]], want: dict[tuple[str, int], tuple[int, float]]
) -> None:
    assert got.keys() == want.keys()
    for key, (count, amount) in want.items():
        assert got[key][0] == count, key
        assert got[key][1] == pytest.approx(amount, rel=1e-12, abs=1e-9), key


async def test_the_whole_ledger_and_a_part_of_it_load_the_counted_orders(
    scoring_api: ApiClient,
) -> None:
    purchases = some_purchases()
    expected = expected_orders(some_purchases())
    runtime = scoring_api.app.state.runtime
    async with runtime.sessions() as session, session.begin():
        session.add_all(purchases)
    async with runtime.sessions() as session:
        whole = await load_ledger(session)
        wanted = sorted({customer for customer, _, _ in expected})[::3]
        part = await load_ledger(session, wanted)

    assert whole.customer_ids == sorted(whole.customer_ids)  # indices in id order
    # PostgreSQL reads the whole base from purchase summaries: orders merged per day.
    assert_same_days(days_of(whole), purchase_days(expected))
    assert part.customer_ids == wanted
    assert orders_of(part) == [order for order in expected if order[0] in set(wanted)]


async def test_an_empty_ledger_loads_as_empty_arrays(scoring_api: ApiClient) -> None:
    async with scoring_api.app.state.runtime.sessions() as session:
        loaded = await load_ledger(session)

    assert loaded.customer_ids == []
    assert len(loaded.ledger.customer) == len(loaded.ledger.day) == len(loaded.ledger.amount) == 0
