"""lifecycle_sweep.py's data: a generated customer base with its stages, scores and warnings,
loaded into PostgreSQL or SQLite in chunks.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import math
import pickle
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from crm_contracts import Grade, Stage, ValueTier
from lifecycle_service.db.models import ChurnWarningRow
from lifecycle_service.domain import stages as stages_module
from lifecycle_service.domain.churn_warnings import ChurnWarningRecord
from lifecycle_service.domain.counts import month_index
from lifecycle_service.domain.review import next_review_at
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.domain.stages import CustomerLifecycle, on_sweep, stage_for
from lifecycle_service.domain.warning_policy import warning_changes
from lifecycle_service.workflows.customer_rows import (
    CUSTOMERS,
    state_values,
    warning_values,
)

STATE_DATE = datetime(2026, 11, 1, tzinfo=UTC)  # D: the stored state is up to date here


HISTORY_DAYS = 730


PROSPECT_SHARE = 0.04


REPEAT_SHARE = 0.35  # of buyers


SCORED_SHARE = 0.85  # of buyers


LOAD_CHUNK = 50_000


FIXED_POINT_EVERY = 50  # check every 50th generated state


DAY = timedelta(days=1)


TIERS = (ValueTier.STRATEGIC_PARTNER, ValueTier.GROWTH, ValueTier.PROFIT, ValueTier.BASIC)


TIER_WEIGHTS = (2, 18, 10, 70)


GRADES = (Grade.VIP, Grade.HIGH, Grade.MEDIUM, Grade.LOW)


GRADE_WEIGHTS = (2, 10, 38, 50)


RULES = StageRules()


TABLES = ("customer_lifecycles", "churn_warnings")


@dataclass(frozen=True)
class GeneratedCustomer:
    """One customer as the service would have stored it at the state date."""

    state: CustomerLifecycle
    active_months: list[int]
    clv_currency: str | None
    warning: ChurnWarningRecord | None
    next_review_at: datetime | None

    def row(self) -> dict[str, Any]:
        """The ``customer_lifecycles`` row, in the service's own column mapping."""
        return {
            **state_values(self.state),
            "active_months": self.active_months,
            "clv_currency": self.clv_currency,
            "next_review_at": self.next_review_at,
        }


def _ago(rng: random.Random, days: float, at: datetime) -> datetime:
    """A uniform moment in the `days` before `at` (whole seconds)."""
    return at - timedelta(seconds=int(rng.uniform(0, days * 86_400)))


def _purchases(rng: random.Random, as_of: datetime) -> tuple[list[datetime], float | None]:
    """Purchase moments (ascending, all before `as_of`) and the true rhythm of repeat buyers."""
    first = _ago(rng, HISTORY_DAYS, as_of)
    if rng.random() >= REPEAT_SHARE:
        return [first], None
    rhythm = rng.lognormvariate(math.log(45), 0.6)
    wanted = 2 + min(int(rng.expovariate(1 / 4)), 60)  # 2 orders or more, mean about 6
    moments, at = [first], first
    for _ in range(wanted - 1):
        at += timedelta(seconds=int(rng.expovariate(1 / rhythm) * 86_400) + 3_600)
        if at >= as_of:
            break
        moments.append(at)
    return moments, rhythm


def _settled_stage(state: CustomerLifecycle, as_of: datetime) -> CustomerLifecycle:
    """The state with the stage the rules give at `as_of`, and a plausible `stage_since`.

    `stage_for` is a fixed point but depends on the current stage (hysteresis), so it is
    applied to its own result until the stage holds.
    """
    for _ in range(4):
        stage = stage_for(state, as_of, RULES).stage
        if stage is state.stage:
            break
        state = dataclasses.replace(state, stage=stage)
    first, last = state.first_purchase_at, state.last_purchase_at
    assert first is not None
    assert last is not None
    if state.stage is Stage.NEW:
        since = first
    elif state.stage is Stage.WON_BACK:
        since = state.stage_since
    elif state.stage in (Stage.ACTIVE, Stage.LOYAL):
        since = min(max(first + RULES.new_days * DAY, last), as_of)
    else:  # declining: since some moment of the silence
        since = last + (as_of - last) * 0.5
    return dataclasses.replace(state, stage_since=since)


def generate_customer(rng: random.Random, as_of: datetime) -> GeneratedCustomer:
    """One customer at `as_of`, stage, warning and review time from the domain functions."""
    customer_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    if rng.random() < PROSPECT_SHARE:
        prospect = CustomerLifecycle(customer_id, Stage.PROSPECT, _ago(rng, HISTORY_DAYS, as_of))
        return GeneratedCustomer(prospect, [], None, None, None)
    moments, rhythm = _purchases(rng, as_of)
    first, last = moments[0], moments[-1]
    values = [round(rng.lognormvariate(math.log(55), 0.7), 2) for _ in moments]
    silent_days = (as_of - last) / DAY
    scores: dict[str, Any] = {}
    currency = None
    if rng.random() < SCORED_SHARE:
        if len(moments) >= 2 and rhythm is not None:
            expected = rhythm * rng.uniform(0.8, 1.25)
        else:  # the models' population estimate for a one-time buyer
            expected = rng.lognormvariate(math.log(160), 0.4)
        churn = 1 - math.exp(-silent_days / (2.5 * expected)) + rng.gauss(0, 0.05)
        tier = rng.choices(TIERS, TIER_WEIGHTS)[0]
        scores = {
            "expected_interpurchase_days": round(expected, 2),
            "churn_risk": round(min(max(churn, 0.0), 0.99), 4),
            "value_tier": tier,
            "grade": rng.choices(GRADES, GRADE_WEIGHTS)[0],
            "predicted_clv_12m": round(sum(values) * rng.uniform(0.1, 1.5), 2),
            "scores_as_of": max(last, _ago(rng, 1, as_of)),
        }
        currency = "USD"
    state = CustomerLifecycle(
        customer_id=customer_id,
        stage=Stage.ACTIVE,
        stage_since=last,
        first_purchase_at=first,
        last_purchase_at=last,
        order_count=len(moments),
        average_order_value=round(sum(values) / len(values), 2),
        last_order_value=values[-1],
        **scores,
    )
    if len(moments) >= 3 and silent_days < RULES.won_back_settling_days and rng.random() < 0.1:
        state = dataclasses.replace(state, stage=Stage.WON_BACK)  # bought after declining
    state = _settled_stage(state, as_of)
    warning = None
    warning_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    for change in warning_changes(None, state, RULES, as_of, warning_id):
        # Raised some time after the last purchase (a purchase would have closed it) and
        # less than the expiry ago (else the sweep at `as_of` would have closed it as lost).
        oldest = max(last, as_of - (RULES.warning_expiry_days - 1) * DAY)
        raised = oldest + (as_of - oldest) * rng.random()
        warning = dataclasses.replace(change, raised_at=raised, changed_at=raised)
    months = sorted({month_index(moment) for moment in moments})
    review = next_review_at(state, warning, RULES, as_of)
    return GeneratedCustomer(state, months, currency, warning, review)


def generate_chunks(count: int, seed: int, as_of: datetime) -> Iterator[list[GeneratedCustomer]]:
    """`count` customers in lists of `LOAD_CHUNK`, deterministic for a seed."""
    rng = random.Random(seed)
    for start in range(0, count, LOAD_CHUNK):
        yield [generate_customer(rng, as_of) for _ in range(min(LOAD_CHUNK, count - start))]


@dataclass
class BaseSummary:
    """What was generated and loaded."""

    customers: int = 0
    warnings: int = 0
    stages: Counter[str] = dataclasses.field(default_factory=Counter)
    repeat_buyers: int = 0
    scored: int = 0
    without_review: int = 0
    due_in_a_day: int = 0
    not_fixed_points: int = 0
    generate_seconds: float = 0.0
    load_seconds: float = 0.0
    vacuum_seconds: float = 0.0

    def add(self, chunk: list[GeneratedCustomer], as_of: datetime) -> None:
        for customer in chunk:
            state = customer.state
            self.customers += 1
            self.stages[state.stage.value] += 1
            self.warnings += customer.warning is not None
            self.repeat_buyers += state.order_count >= 2
            self.scored += state.churn_risk is not None
            self.without_review += customer.next_review_at is None
            if customer.next_review_at is not None and customer.next_review_at <= as_of + DAY:
                self.due_in_a_day += 1
        for customer in chunk[::FIXED_POINT_EVERY]:
            if on_sweep(customer.state, as_of, RULES)[1] is not None:
                self.not_fixed_points += 1


def _customer_record(customer: GeneratedCustomer) -> tuple[Any, ...]:
    row = customer.row()
    row["active_months"] = json.dumps(row["active_months"])
    return tuple(row[column.name] for column in CUSTOMERS.columns)


def _warning_record(warning: ChurnWarningRecord, columns: list[str]) -> tuple[Any, ...]:
    row = warning_values(warning)
    row["reasons"] = json.dumps(row["reasons"])
    return tuple(row[name] for name in columns)


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


async def load_postgres(database_urls: list[str], args: argparse.Namespace) -> BaseSummary:
    """Generate the base once and COPY each chunk into every database, then VACUUM ANALYZE."""
    summary = BaseSummary()
    warning_columns = [column.name for column in ChurnWarningRow.__table__.columns]
    connections = [await asyncpg.connect(asyncpg_dsn(url)) for url in database_urls]
    try:
        for customers, warnings in _postgres_records(args, summary, warning_columns):
            started = time.perf_counter()
            for connection in connections:
                await connection.copy_records_to_table(
                    "customer_lifecycles",
                    records=customers,
                    columns=[column.name for column in CUSTOMERS.columns],
                )
                if warnings:
                    await connection.copy_records_to_table(
                        "churn_warnings", records=warnings, columns=warning_columns
                    )
            summary.load_seconds += time.perf_counter() - started
        started = time.perf_counter()
        for connection in connections:
            for table in TABLES:
                await connection.execute(f"VACUUM ANALYZE {table}")
        summary.vacuum_seconds = time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()
    return summary


def _postgres_records(
    args: argparse.Namespace, summary: BaseSummary, warning_columns: list[str]
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """The base's COPY records chunk by chunk; with ``--base-cache DIR``, generated once per
    size, seed and generator sources and read back from a pickle afterwards (generating a
    million customers through the domain functions takes minutes)."""
    cache: Path | None = getattr(args, "base_cache", None)
    path = None
    if cache is not None:
        path = cache / f"base-{args.customers}-{args.seed}-{_generator_digest()}.pickle"
        if path.exists():
            with path.open("rb") as file:
                while True:
                    started = time.perf_counter()
                    item = pickle.load(file)
                    summary.generate_seconds += time.perf_counter() - started
                    if isinstance(item, BaseSummary):
                        # The counts are the cached base's; the times are this run's.
                        read, loaded = summary.generate_seconds, summary.load_seconds
                        summary.__dict__.update(item.__dict__)
                        summary.generate_seconds, summary.load_seconds = read, loaded
                        print(
                            f"  base read from {path} (generated in {item.generate_seconds:.0f} s)"
                        )
                        return
                    yield item
    writing = None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        writing = path.with_suffix(".partial").open("wb")
    try:
        for chunk in _timed_chunks(args, summary):
            customers = [_customer_record(c) for c in chunk]
            warnings = [_warning_record(c.warning, warning_columns) for c in chunk if c.warning]
            if writing is not None:
                pickle.dump((customers, warnings), writing, protocol=pickle.HIGHEST_PROTOCOL)
            yield customers, warnings
        if writing is not None and path is not None:
            pickle.dump(summary, writing, protocol=pickle.HIGHEST_PROTOCOL)
            writing.close()
            path.with_suffix(".partial").rename(path)
    finally:
        if writing is not None:
            writing.close()


def _generator_digest() -> str:
    """The sources the base depends on: this module and lifecycle's domain package."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    domain = Path(inspect.getfile(stages_module)).parent
    for source in sorted(domain.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


def load_sqlite(database_urls: list[str], args: argparse.Namespace) -> BaseSummary:
    """Generate the base once and insert it into every database through SQLAlchemy Core."""
    summary = BaseSummary()
    engines = [create_engine(make_url(url).set(drivername="sqlite")) for url in database_urls]
    warnings_table = ChurnWarningRow.__table__
    try:
        for chunk in _timed_chunks(args, summary):
            started = time.perf_counter()
            customers = [c.row() for c in chunk]
            warnings = [warning_values(c.warning) for c in chunk if c.warning is not None]
            for engine in engines:
                with engine.begin() as connection:
                    connection.execute(insert(CUSTOMERS), customers)
                    if warnings:
                        connection.execute(insert(warnings_table), warnings)
            summary.load_seconds += time.perf_counter() - started
        started = time.perf_counter()
        for engine in engines:
            with engine.begin() as connection:
                connection.execute(text("ANALYZE"))
        summary.vacuum_seconds = time.perf_counter() - started
    finally:
        for engine in engines:
            engine.dispose()
    return summary


def _timed_chunks(args: argparse.Namespace, summary: BaseSummary) -> Iterator[list[Any]]:
    chunks = generate_chunks(args.customers, args.seed, STATE_DATE)
    while True:
        started = time.perf_counter()
        chunk = next(chunks, None)
        if chunk is None:
            return
        summary.add(chunk, STATE_DATE)
        summary.generate_seconds += time.perf_counter() - started
        yield chunk
        if summary.customers % 200_000 == 0:
            print(f"  loaded {summary.customers:,}", flush=True)
