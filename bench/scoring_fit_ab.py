"""scoring-service's fit path (ledger load + histories + model fit), source trees alternated.

The service's `fit_seconds` times `load_ledger` (refresh of the purchase summaries marked
stale, then the whole-base read), `histories_as_of` and `fit_models` (in a worker thread).
Through the service a run at 1,000,000 customers is one sample per tree, minutes apart, on a
PostgreSQL server busy writing out the previous tree's re-score; this measures the same steps
without the re-score, alternating the trees round after round on one synthetic ledger (the
one of `scoring_fit_service.py`, COPYed once, its summaries derived), each tree on its own
copy of that database (`create database ... template`, then migrated by that tree). Each
(round, tree) is a fresh worker process with the tree's sources first on PYTHONPATH that
fits `--fits` times: the first fit is the process's first, as a service's first fit is.

    python bench/scoring_fit_ab.py [--customers 1000000] [--baseline main]
        [--trees baseline current] [--rounds 3] [--fits 2] [--touched PERCENT]
        [--modes thread main] [--explain] [--triggers]

`--modes`: `thread` runs `fit_models` in a worker thread, as the service does; `main` in the
event loop's thread (as the in-process figures of branch fitrefresh did); both alternate.
`--touched P` marks P% of the customers stale before every fit (the triggers' marks after
orders: that fit refreshes them). `--explain` prints EXPLAIN (ANALYZE, BUFFERS) of the
summaries' refresh (with P% marked, 10 if not given) and of the whole-base read, per tree.
`--triggers` times the intake's statements on `purchases` with the summaries' triggers
enabled and disabled alternately (their cost per order).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from lib.backends import embedded_postgres
from lib.baseline import export_sources, short_commit
from lib.processes import PYTHON
from lib.report import format_table, machine_summary
from lib.scoring_process import migrate, scoring_env
from lib.synthetic_fit import AS_OF_DAY, copy_ledger
from sqlalchemy import make_url

# Customers whose orders changed since their summary was derived, as the triggers mark them.
TOUCH = """
insert into stale_purchase_summaries (customer_id)
select customer_id from purchase_summaries where abs(hashtext(customer_id)) % 100 < {percent}
"""


def dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def execute(url: str, *statements: str) -> list[Any]:
    connection = await asyncpg.connect(dsn(url))
    try:
        return [await connection.fetch(statement) for statement in statements]
    finally:
        await connection.close()


# --------------------------------------------------------------------------------------------
# The worker: runs with one tree's sources, as the service's fit does


async def worker_fits(url: str, fits: int, touched: int, main_thread: bool) -> list[dict[str, Any]]:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from scoring_service.domain.models import fit_models
    from scoring_service.domain.predictions import ScoringPolicy
    from scoring_service.domain.purchase_history import histories_as_of
    from scoring_service.domain.tiers import ValueScorecard
    from scoring_service.workflows.ledger_loading import load_ledger

    policy = ScoringPolicy(90, 12, 0.01, ValueScorecard(0.6, 0.4))
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine)
    results = []
    for fit_number in range(1, fits + 1):
        if touched:
            await execute(url, TOUCH.format(percent=touched))
        load = os.getloadavg()[0]
        start, cpu = time.perf_counter(), time.process_time()
        async with sessions() as session, session.begin():
            loaded = await load_ledger(session)
        loaded_at = time.perf_counter()
        histories = histories_as_of(loaded.ledger, AS_OF_DAY)
        histories_at = time.perf_counter()
        if main_thread:
            fit = fit_models(histories, policy, previous=None, ledger=loaded.ledger)
        else:  # as fit_and_rescore does
            fit = await asyncio.to_thread(
                functools.partial(
                    fit_models, histories, policy, previous=None, ledger=loaded.ledger
                )
            )
        done = time.perf_counter()
        bg = fit.models.bg_nbd_dict()
        results.append(
            {
                "fit": fit_number,
                "load s": loaded_at - start,
                "histories s": histories_at - loaded_at,
                "fit_models s": done - histories_at,
                "total s": done - start,
                "python CPU s": time.process_time() - cpu,
                "customers": len(histories),
                "BG/NBD r, a": f"{bg.get('r', 0):.10f}, {bg.get('a', 0):.10f}",
                "load": load,
            }
        )
    await engine.dispose()
    return results


def run_worker(
    env: dict[str, str], url: str, args: argparse.Namespace, mode: str
) -> list[dict[str, Any]]:
    command = [PYTHON, __file__, "--worker", url, "--fits", str(args.fits)]
    command += ["--touched", str(args.touched)] + (["--main-thread"] if mode == "main" else [])
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3_000:])
    rows: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return rows


# --------------------------------------------------------------------------------------------
# Plans and trigger costs


def explain(url: str, env: dict[str, str], touched: int) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the tree's refresh (with `touched`% marked) and read."""
    code = (
        "from scoring_service.workflows import ledger_loading as l, purchase_summaries as s;"
        "import json; print(json.dumps([s.REFRESH_TOUCHED, l._WHOLE_LEDGER]))"
    )
    done = subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True, check=True)
    refresh, read = json.loads(done.stdout)
    lines = []
    for title, statement, mark in (("refresh", refresh, touched), ("read", read, 0)):
        if mark:
            asyncio.run(execute(url, TOUCH.format(percent=mark)))
        start = time.perf_counter()
        (plan,) = asyncio.run(execute(url, f"explain (analyze, buffers) {statement}"))
        lines.append(f"-- {title} ({mark}% marked): {time.perf_counter() - start:.2f} s")
        lines += [row[0] for row in plan]
    return "\n".join(lines)


INTAKE = """insert into purchases
    (order_id, customer_id, placed_at, purchase_day, amount, refunded, cancelled)
select * from unnest($1::varchar[], $2::varchar[], $3::timestamptz[], $4::int[],
                     $5::numeric[], $6::numeric[], $7::bool[])"""
REFUND = "update purchases set refunded = refunded + $2 where order_id = $1"


async def trigger_cost(url: str, rounds: int = 40) -> list[list[Any]]:
    """The intake's 500-order insert and 20 single-order refunds, triggers on and off."""
    connection = await asyncpg.connect(dsn(url))
    rng = random.Random(1)
    inserts: dict[bool, list[float]] = {True: [], False: []}
    refunds: dict[bool, list[float]] = {True: [], False: []}
    number = 0
    try:
        for round_number in range(rounds):
            for enabled in (True, False) if round_number % 2 == 0 else (False, True):
                switch = "enable" if enabled else "disable"
                await connection.execute(f"alter table purchases {switch} trigger user")
                rows = []
                for _ in range(500):
                    number += 1
                    customer = f"c{rng.randrange(200_000)}"
                    rows.append((f"t{number}", customer, datetime.now(UTC), AS_OF_DAY,
                                 Decimal("12.34"), Decimal(0), False))  # fmt: skip
                start = time.perf_counter()
                async with connection.transaction():
                    await connection.execute(INTAKE, *zip(*rows, strict=True))
                inserts[enabled].append(time.perf_counter() - start)
                start = time.perf_counter()
                async with connection.transaction():
                    refund = [(f"t{number - i}", Decimal(1)) for i in range(20)]
                    await connection.executemany(REFUND, refund)
                refunds[enabled].append(time.perf_counter() - start)
        await connection.execute("alter table purchases enable trigger user")
    finally:
        await connection.close()

    def quartiles(values: list[float]) -> list[float]:
        return [round(q * 1e3, 2) for q in statistics.quantiles(values, n=4)]

    return [
        ["on" if on else "off", *quartiles(inserts[on]), *quartiles(refunds[on])]
        for on in (False, True)
    ]


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", default="main", help="commit of the 'baseline' tree")
    parser.add_argument("--trees", nargs="+", default=["baseline", "current"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fits", type=int, default=2, help="fits per worker process")
    parser.add_argument("--touched", type=int, default=0, metavar="PERCENT")
    parser.add_argument("--modes", nargs="+", choices=["thread", "main"], default=["thread"])
    parser.add_argument("--main-thread", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--triggers", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        fits = asyncio.run(worker_fits(args.worker, args.fits, args.touched, args.main_thread))
        print(json.dumps(fits))
        return 0

    print("# scoring-service: the fit path in-process, trees alternated, PostgreSQL")
    for name, value in machine_summary().items():
        print(f"{name}: {value}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)
    with embedded_postgres() as server, ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fit-ab-")))
        envs: dict[str, dict[str, str]] = {}
        for name in args.trees:
            if name == "current":
                envs[name] = {}
                continue
            ref = args.baseline if name == "baseline" else name
            commit, env = export_sources(ref, folder / name)
            envs[f"{name} ({commit})" if name == "baseline" else short_commit(ref)] = env
        # The template is migrated by the first tree; each copy then by its own tree.
        first = next(iter(envs.values()))
        template = asyncio.run(server.create_database("fit_ab"))
        log = Path(tempfile.gettempdir()) / "scoring-fit-ab-migrate.log"
        migrate({**scoring_env(template, "127.0.0.1:9", "[]"), **first}, log)
        start = time.perf_counter()
        orders = asyncio.run(copy_ledger(dsn(template), args.customers, args.seed))
        print(f"{args.customers:,} customers, {orders:,} orders, loaded in", end=" ")
        print(f"{time.perf_counter() - start:.0f} s", flush=True)
        urls = {}
        for number, (name, env) in enumerate(envs.items()):
            copy = f"fit_ab_{number}"
            asyncio.run(execute(server.admin_url, f'create database "{copy}" template "fit_ab"'))
            url = make_url(template).set(database=copy).render_as_string(hide_password=False)
            envs[name] = {**scoring_env(url, "127.0.0.1:9", "[]"), **env}
            migrate(envs[name], log)
            asyncio.run(execute(url, "vacuum analyze"))
            urls[name] = url
        rows = []
        for round_number in range(1, args.rounds + 1):
            variants = [(name, mode) for name in envs for mode in args.modes]
            for name, mode in variants if round_number % 2 else reversed(variants):
                for fit in run_worker(envs[name], urls[name], args, mode):
                    cells = [round(v, 2) if isinstance(v, float) else v for v in fit.values()]
                    rows.append([round_number, name, mode, *cells])
                    print(" ", rows[-1], flush=True)
        headers = ["round", "tree", "fit_models in", *fit.keys()]
        print()
        print(format_table(headers, rows))
        if args.explain:
            for name in envs:
                print(f"\n## {name}\n{explain(urls[name], envs[name], args.touched or 10)}")
        if args.triggers:
            url = asyncio.run(server.create_database("fit_ab_triggers"))
            migrate({**scoring_env(url, "127.0.0.1:9", "[]"), **first}, log)
            headers = ["triggers", "insert 500 p25 ms", "p50", "p75", "20 refunds p25 ms"]
            print("\n" + format_table([*headers, "p50", "p75"], asyncio.run(trigger_cost(url))))
    print(f"\nload average at the end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
