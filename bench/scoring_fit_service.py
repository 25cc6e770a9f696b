"""scoring-service's fit and persisted re-score at 100,000-1,000,000 customers, on PostgreSQL.

For each base size, a synthetic ledger (the BG/NBD + Gamma-Gamma process of `scoring_fit.py`,
expanded to orders: first purchase, repeat purchases in between, the last on day t_x) is
COPYed into the `purchases` table of a fresh, migrated database on the embedded PostgreSQL.
Then, for each source tree given (by default: the commit this branch started from, checked out
with `git archive` into a temporary folder, and the working tree), on its own copy of that
database (CREATE DATABASE ... TEMPLATE), brought back to that tree's own schema when the tree is
older than this checkout (downgraded by this checkout's migrations):

  1. a scoring-service process (uvicorn, Kafka off) is started with that tree first on
     PYTHONPATH,
  2. `POST /v1/models/fit` as of day D: loads the ledger, fits, re-scores and stores every
     customer (every score is new: one `score.updated` outbox row each),
  3. `POST /v1/models/fit` as of D + 7: the same, now against stored scores (only what
     changed is written and published).
The service's own `fit_seconds` (ledger load to fitted models) splits each request into fit
and persisted re-score; CPU seconds of the service and of PostgreSQL are read around each,
with the WAL written and the `scores` rows updated (and how many of them in place, heap-only).

The split per model step (BG/NBD, Gamma-Gamma, K-means + silhouette, RFM/value thresholds,
predictions) is measured in a subprocess per tree on the same ledger, in-process (pure domain
code, no database), since the service does not time its steps.

    python bench/scoring_fit_service.py [--customers 100000 1000000] [--baseline a679c7a]
        [--trees baseline current] [--seed 1] [--py-spy DIR] [--first-fit-only]
        [--touched PERCENT]

`--py-spy DIR` samples the service with py-spy during each request (collapsed stacks in DIR)
and prints where the samples went.

`--trees` takes 'baseline', 'current' (this working tree) or any commit (e.g. the branch head,
so that editing the working tree cannot change a run in progress).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import numpy as np
import psutil
from lib.backends import embedded_postgres, make_api_key
from lib.processes import BENCH_DIR, PYTHON, ServerProcess, process_tree_cpu_seconds
from lib.py_spy import py_spy, summarise_samples
from lib.report import format_table, machine_summary
from lib.scoring_process import SCORING_APP, migrate, scoring_env
from lib.synthetic_fit import AS_OF_DAY, copy_ledger, synthetic_ledger
from sqlalchemy import make_url

from crm_shared import API_KEY_HEADER

REPO = BENCH_DIR.parent
DEFAULT_BASELINE = "a679c7a"  # where branch scoring-scale started
SOURCE_DIRS = ("shared/src", "services/scoring-service/src")
MIGRATIONS = "services/scoring-service/migrations/versions"


# --------------------------------------------------------------------------------------------
# Synthetic ledger


async def sql_value(dsn: str, sql: str) -> Any:
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


def asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


# --------------------------------------------------------------------------------------------
# Source trees


@contextlib.contextmanager
def source_trees(names: list[str], baseline: str) -> Iterator[dict[str, Path]]:
    """name -> repository root: 'current' is this checkout; 'baseline' (the commit `baseline`)
    or any other commit-ish is a `git archive` copy of that commit's sources."""
    with tempfile.TemporaryDirectory(prefix="scoring-fit-trees-") as folder:
        trees: dict[str, Path] = {}
        for name in names:
            if name == "current":
                trees[name] = REPO
                continue
            commit = baseline if name == "baseline" else name
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", commit, *SOURCE_DIRS, MIGRATIONS],
                capture_output=True,
                check=True,
            )
            root = Path(folder) / name
            root.mkdir()
            subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
            trees[name] = root
        yield trees


def schema_head(root: Path) -> str:
    """The newest scoring migration of a tree (the revision no other one follows)."""
    revisions, followed = set(), set()
    for path in (root / MIGRATIONS).glob("*.py"):
        text = path.read_text()
        revisions.update(re.findall(r"^revision: str = '(\w+)'", text, re.MULTILINE))
        followed.update(re.findall(r"^down_revision: str \| None = '(\w+)'", text, re.MULTILINE))
    (head,) = revisions - followed
    return head


def schema_as_of_tree(url: str, root: Path, env: dict[str, str], log: Path) -> None:
    """Bring a database migrated by this checkout back to the schema of tree `root` (a tree
    before this checkout's migrations), so that each tree runs on its own schema."""
    head = schema_head(root)
    if head == schema_head(REPO):
        return
    downgrade = (
        "import sys; from alembic import command; from crm_shared.migrations import "
        "alembic_config; from scoring_service.migrate import SERVICE_DIR; "
        "command.downgrade(alembic_config(SERVICE_DIR, sys.argv[1]), sys.argv[2])"
    )
    with log.open("ab") as output:
        subprocess.run(
            [PYTHON, "-c", downgrade, url, head],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=True,
        )


def tree_env(env: dict[str, str], root: Path) -> dict[str, str]:
    """`env` with the tree's sources ahead of the editable installs."""
    paths = [str(root / part) for part in SOURCE_DIRS]
    return {**env, "PYTHONPATH": os.pathsep.join([*paths, env.get("PYTHONPATH", "")])}


# --------------------------------------------------------------------------------------------
# Measurements


def postgres_cpu(server: Any) -> Callable[[], float]:
    """CPU seconds of the PostgreSQL server and its backends, so far."""
    pid = int(server.pid())
    return lambda: process_tree_cpu_seconds(pid)


# py-spy summary categories: the first whose marker is in a sample's stack names it.
PROFILE_CATEGORIES = (
    ("ledger load", ("load_ledger",)),
    ("model fit", ("fit_models",)),
    ("scoring arrays", ("score_histories",)),
    ("engagement + feedback reads", ("engagement_counts", "feedback_inputs")),
    ("store + publish", ("store_scores",)),
)


def timed_fit(
    base_url: str,
    key: str,
    as_of: datetime,
    service_pid: int,
    pg_cpu: Callable[[], float],
    profile: Path | None = None,
) -> dict[str, Any]:
    cpu0, pg0 = process_tree_cpu_seconds(service_pid), pg_cpu()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with py_spy(service_pid, profile):
        response = httpx.post(
            f"{base_url}/v1/models/fit",
            json={"as_of": as_of.isoformat()},
            headers={API_KEY_HEADER: key},
            timeout=3_600,
        )
    seconds = time.perf_counter() - start
    if profile is not None:
        print(summarise_samples(profile, PROFILE_CATEGORIES), flush=True)
    response.raise_for_status()
    body = response.json()
    return {
        "seconds": seconds,
        "fit_seconds": float(body["fit_seconds"]),
        "service_cpu": process_tree_cpu_seconds(service_pid) - cpu0,
        "postgres_cpu": pg_cpu() - pg0,
        "load": load,
        "k": body["thresholds"]["segmentation"]["k"],
    }


# Customers whose orders changed since the last fit, as the triggers on `purchases` mark them
# (trees with purchase summaries refresh theirs at the next fit); a no-op without the table.
_TOUCH = """
with marked as (
    insert into stale_purchase_summaries (customer_id)
    select customer_id from purchase_summaries
    where abs(hashtext(customer_id)) % 100 < {percent}
    returning 1
) select count(*) from marked
"""
_HAS_SUMMARIES = "select to_regclass('stale_purchase_summaries') is not null"


def run_tree(
    name: str,
    root: Path,
    url: str,
    key_json: str,
    key: str,
    pg_cpu: Callable[[], float],
    profiles: Path | None = None,
    first_fit_only: bool = False,
    touched: int = 0,
) -> list[dict[str, Any]]:
    env = tree_env(scoring_env(url, "127.0.0.1:9", key_json), root)
    env["SCORING_KAFKA_ENABLED"] = "false"
    env["SCORING_PENDING_RESCORE_INTERVAL_SECONDS"] = "0"
    logs = Path(tempfile.gettempdir()) / f"scoring-fit-service-{name}.log"
    results = []
    dsn = asyncpg_dsn(url)
    with ServerProcess(name, SCORING_APP, env, logs, app_dir=None) as server:
        refit = "refit + re-score, D+7" + (f", {touched}% touched" if touched else "")
        requests = (("first fit (all new)", AS_OF_DAY), (refit, 7))
        for label, day in requests[:1] if first_fit_only else requests:
            if day == 7 and touched and asyncio.run(sql_value(dsn, _HAS_SUMMARIES)):
                marked = asyncio.run(sql_value(dsn, _TOUCH.format(percent=touched)))
                print(f"  {name}: {marked:,} customers marked as touched since the first fit")
            as_of_day = AS_OF_DAY + (day if day == 7 else 0)
            as_of = datetime.fromtimestamp(as_of_day * 86_400 + 86_399, UTC)
            outbox0 = asyncio.run(sql_value(dsn, "select count(*) from outbox"))
            wal0, updates0 = asyncio.run(sql_value(dsn, _WAL_AND_UPDATES))
            profile = None
            if profiles is not None:
                profile = profiles / f"{name}-{label.split()[0]}-{server.pid}.txt"
            result = timed_fit(server.base_url, key, as_of, server.pid, pg_cpu, profile)
            outbox1 = asyncio.run(sql_value(dsn, "select count(*) from outbox"))
            # A backend's table counters reach the shared statistics within 10 s of idling.
            time.sleep(11)
            wal1, updates1 = asyncio.run(sql_value(dsn, _WAL_AND_UPDATES))
            result["wal_mb"] = float(wal1 - wal0) / 1e6
            result["updated"] = tuple(b - a for a, b in zip(updates0, updates1, strict=True))
            results.append({"tree": name, "step": label, "events": outbox1 - outbox0, **result})
    return results


# WAL written so far, and the `scores` rows updated so far and of them heap-only (in place).
_WAL_AND_UPDATES = (
    "select row(pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0'), "
    "(select row(n_tup_upd, n_tup_hot_upd) from pg_stat_user_tables where relname = 'scores'))"
)


def split_in_subprocess(root: Path, customers: int, seed: int) -> dict[str, float]:
    env = tree_env(dict(os.environ), root)
    completed = subprocess.run(
        [PYTHON, str(Path(__file__)), "--split", str(customers), "--seed", str(seed)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr[-2_000:])
    split: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return split


def model_split(customers: int, seed: int) -> dict[str, float]:
    """Seconds of each model step on the synthetic base, with the importable scoring code."""
    from scoring_service.domain.bg_nbd import fit_bg_nbd_with_fallback
    from scoring_service.domain.churn_calibration import fit_churn_calibration
    from scoring_service.domain.collapsed_histories import collapse
    from scoring_service.domain.gamma_gamma import (
        can_enter_spend_model,
        fit_gamma_gamma_with_fallback,
    )
    from scoring_service.domain.predictions import ScoringPolicy, predictions
    from scoring_service.domain.purchase_history import PurchaseLedger, histories_as_of
    from scoring_service.domain.rfm import fit_rfm_thresholds
    from scoring_service.domain.segments import fit_behavioural_segments
    from scoring_service.domain.tiers import ValueScorecard, fit_value_thresholds

    ledger = PurchaseLedger(*synthetic_ledger(customers, seed))
    policy = ScoringPolicy(90, 12, 0.01, ValueScorecard(0.6, 0.4))
    split: dict[str, float] = {}

    def step(name: str, work: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = work()
        split[name] = time.perf_counter() - start
        return result

    h = step("histories", lambda: histories_as_of(ledger, AS_OF_DAY))
    rows = collapse(h.x, h.t_x, h.T)
    bg = step(
        "BG/NBD", lambda: fit_bg_nbd_with_fallback(rows.x, rows.t_x, rows.T, weights=rows.weights)
    )
    usable = can_enter_spend_model(h.x, h.repeat_spend_mean)
    gg = step(
        "Gamma-Gamma",
        lambda: fit_gamma_gamma_with_fallback(h.x[usable], h.repeat_spend_mean[usable]),
    )
    predicted = step("predictions", lambda: predictions(h, bg.params, gg.params, policy))
    frequency = h.purchase_days.astype(np.float64)
    step(
        "RFM + value thresholds",
        lambda: (
            fit_rfm_thresholds(h.recency_days, frequency, h.total_spend),
            fit_value_thresholds(h.spend_12m, predicted.predicted_clv, policy.scorecard),
        ),
    )
    step(
        "churn calibration",
        lambda: fit_churn_calibration(ledger, AS_OF_DAY, policy.churn_horizon_days),
    )
    segments = step(
        "K-means + silhouette",
        lambda: fit_behavioural_segments(h.recency_days, frequency, h.total_spend),
    )
    split["k"] = segments.k
    return split


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="commit of the 'before'")
    parser.add_argument("--trees", nargs="+", default=["baseline", "current"])
    parser.add_argument("--split", type=int, help=argparse.SUPPRESS)
    parser.add_argument(
        "--first-fit-only",
        action="store_true",
        help="only the first fit per tree (no D+7 refit): halves a run at 1,000,000",
    )
    parser.add_argument(
        "--touched",
        type=int,
        default=0,
        metavar="PERCENT",
        help="before the refit, mark this share of customers as changed since the first fit"
        " (trees with purchase summaries refresh theirs in the refit)",
    )
    parser.add_argument(
        "--py-spy", type=Path, metavar="DIR", help="sample the service with py-spy per request"
    )
    args = parser.parse_args()
    if args.split:
        print(json.dumps(model_split(args.split, args.seed)))
        return 0

    print("# scoring-service: fit + persisted re-score through the service, PostgreSQL")
    for name, value in machine_summary().items():
        print(f"{name}: {value}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"baseline: {args.baseline}; trees: {', '.join(args.trees)}")
    print()
    key, key_json = make_api_key()
    service_rows, split_rows = [], []
    with embedded_postgres() as server, source_trees(args.trees, args.baseline) as trees:
        pg_cpu = postgres_cpu(server)
        for customers in args.customers:
            template = f"ledger_{customers}"
            url = asyncio.run(server.create_database(template))
            env = scoring_env(url, "127.0.0.1:9", key_json)
            migrate(env, Path(tempfile.gettempdir()) / "scoring-fit-service-migrate.log")
            start = time.perf_counter()
            orders = asyncio.run(copy_ledger(asyncpg_dsn(url), customers, args.seed))
            loaded = time.perf_counter() - start
            print(f"{customers:,} customers: {orders:,} orders loaded in {loaded:.0f} s")
            # Vacuumed once here, so that no tree's request pays for the loaded ledger's
            # autovacuum or for setting its hint bits (each copy starts from these pages).
            asyncio.run(sql_value(asyncpg_dsn(url), "vacuum analyze"))
            for name, root in trees.items():
                split = split_in_subprocess(root, customers, args.seed)
                split_rows.append(
                    [f"{customers:,}", name, *(round(split[s], 2) for s in SPLIT), split["k"]]
                )
                # Each tree fits on its own copy of the loaded database (a file copy).
                copy = f"{template}_{len(split_rows)}"
                statement = f'create database "{copy}" template "{template}"'
                asyncio.run(sql_value(server.admin_url, statement))
                copy_url = make_url(url).set(database=copy).render_as_string(hide_password=False)
                schema_as_of_tree(
                    copy_url,
                    root,
                    scoring_env(copy_url, "127.0.0.1:9", key_json),
                    Path(tempfile.gettempdir()) / "scoring-fit-service-migrate.log",
                )
                if args.py_spy:
                    args.py_spy.mkdir(parents=True, exist_ok=True)
                rows = run_tree(
                    name,
                    root,
                    copy_url,
                    key_json,
                    key,
                    pg_cpu,
                    args.py_spy,
                    args.first_fit_only,
                    args.touched,
                )
                for row in rows:
                    service_rows.append([f"{customers:,}", *service_cells(row)])
                    print(" ", service_rows[-1], flush=True)
                # Dropped, so that its autovacuum (a refit leaves a dead score and outbox row
                # per customer) does not run on the server's CPU and WAL while the next tree
                # is measured (both are counted for the whole server).
                statement = f'drop database "{copy}" with (force)'
                asyncio.run(sql_value(server.admin_url, statement))
    print()
    print(format_table(["customers", "tree", *SPLIT, "K"], split_rows))
    print()
    print(
        format_table(
            [
                "customers",
                "tree",
                "request",
                "seconds",
                "fit s (service)",
                "re-score + store s",
                "events",
                "K",
                "service CPU s",
                "postgres CPU s",
                "WAL MB",
                "scores updated (in place)",
                "load",
            ],
            service_rows,
        )
    )
    rss = psutil.Process().memory_info().rss / 2**20
    print(f"\nRSS of the benchmark process: {rss:,.0f} MiB")
    return 0


SPLIT = (
    "histories",
    "BG/NBD",
    "Gamma-Gamma",
    "predictions",
    "RFM + value thresholds",
    "churn calibration",
    "K-means + silhouette",
)


def service_cells(row: dict[str, Any]) -> list[object]:
    return [
        row["tree"],
        row["step"],
        round(row["seconds"], 1),
        round(row["fit_seconds"], 1),
        round(row["seconds"] - row["fit_seconds"], 1),
        f"{row['events']:,}",
        row["k"],
        round(row["service_cpu"], 1),
        round(row["postgres_cpu"], 1),
        f"{row['wal_mb']:,.0f}",
        "{:,} ({:,})".format(*row["updated"]),
        f"{row['load']:.2f}",
    ]


if __name__ == "__main__":
    raise SystemExit(main())
