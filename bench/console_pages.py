"""The operator console's pages: answer times over a base of 100,000 customers.

The product's goal: every page of the console answers in under 300 ms with 100,000 customers.

Setup, on one embedded PostgreSQL server (one database per service, each migrated by the
service's own ``migrate`` module):

  1. `--customers` (100,000) customers are generated (bench/lib/console_base.py) by
     bench/lib/sweep_base.py's generator
     (stages, scores, open warnings as lifecycle-service would have stored them on
     2026-11-01) and COPYed into lifecycle-service's ``customer_lifecycles`` and
     ``churn_warnings``; the same customers' scores into scoring-service's ``scores`` (one
     row each, with a ScoreUpdated payload and the filter columns), and one decided message
     each into notification-service's ``notifications`` (sent, or suppressed with a reason),
     then VACUUM ANALYZE. profile-service stays empty: the console reads one profile per
     customer page, which bench/customer_360.py measures at this scale.
  2. The four services run as uvicorn processes with Kafka and their scheduled jobs off, and
     the console as a fifth, pointed at them.
  3. This process logs in (the login form, with its CSRF token) and GETs each page
     `--rounds` times in turn, one request at a time; per page: median, p95 and max wall time
     as the browser would wait for the HTML (all service calls the page makes included).
     The warnings CSV export is timed on its own (the whole file, streamed).

With `--baseline REF` a second set of databases is migrated and served by REF's sources (see
lib/baseline.py), loaded with the same base, and every page is asked of both consoles in turn
within each round, so both see the same machine load. `--explain` prints the PostgreSQL plans
(EXPLAIN ANALYZE) of the statements behind the slowest calls, on each tree's databases.

    python bench/console_pages.py [--customers 100000] [--rounds 20] [--seed 1] [--keep DIR]
        [--baseline REF] [--explain]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from lib import console_base
from lib import sweep_base as base
from lib.backends import create_postgres_database, embedded_postgres, make_api_key
from lib.baseline import Variant, export_sources
from lib.processes import ServerProcess, run_main, run_migration
from lib.report import format_table, print_header

GOAL_MS = 300.0
SERVICES = {
    "profile": ("profile_service", "PROFILE_"),
    "scoring": ("scoring_service", "SCORING_"),
    "lifecycle": ("lifecycle_service", "LIFECYCLE_"),
    "notification": ("notification_service", "NOTIFICATION_"),
}
JOBS_OFF = {
    "SCORING_REFIT_INTERVAL_SECONDS": "0",
    "SCORING_RESCORE_INTERVAL_SECONDS": "0",
    "LIFECYCLE_SWEEP_INTERVAL_SECONDS": "0",
    "NOTIFICATION_DELIVERY_INTERVAL_SECONDS": "0",
}


def service_env(prefix: str, database_url: str, keys: str) -> dict[str, str]:
    """A service process's environment: its database, Kafka off, the bench's key."""
    return {
        **os.environ,
        f"{prefix}DATABASE_URL": database_url,
        f"{prefix}KAFKA_ENABLED": "false",
        f"{prefix}ENVIRONMENT": "test",
        f"{prefix}API_KEYS": keys,
        f"{prefix}LOG_LEVEL": "WARNING",
        **JOBS_OFF,
        "PYTHONUNBUFFERED": "1",
    }


def log_in(client: httpx.Client, key: str) -> None:
    """The login form as a browser submits it: its CSRF token, then the key."""
    form = client.get("/login").text
    found = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert found is not None, form
    answer = client.post("/login", data={"csrf_token": found.group(1), "api_key": key})
    if answer.status_code != 303:
        raise RuntimeError(f"login refused: {answer.status_code} {answer.text[:500]}")


def time_pages(
    clients: dict[str, httpx.Client], pages: dict[str, str], rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Every page `rounds` times, in turn, on every variant's console one after the other
    (interleaved, so a change in the machine's load hits all variants alike); milliseconds
    per answer (200 required), by variant and page."""
    times = {variant: {name: [] for name in pages} for variant in clients}
    for client in clients.values():
        for path in pages.values():  # one warm-up each: first imports, pools, plans
            client.get(path).raise_for_status()
    for _ in range(rounds):
        for name, path in pages.items():
            for variant, client in clients.items():
                started = time.perf_counter()
                answer = client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code} {answer.text[:500]}")
                times[variant][name].append(elapsed)
    return times


def p95(samples: list[float]) -> float:
    """The 95th percentile (nearest rank)."""
    ordered = sorted(samples)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def time_service_calls(
    servers: dict[str, ServerProcess], key: str, calls: list[tuple[str, str]], rounds: int
) -> dict[str, list[float]]:
    """The service calls behind the pages, each timed directly (ms per call): where a page's
    time goes."""
    times = {}
    with httpx.Client(headers={"X-API-Key": key}, timeout=120, trust_env=False) as client:
        for service, path in calls:
            url = servers[service].base_url + path
            client.get(url).raise_for_status()
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                client.get(url).raise_for_status()
                samples.append((time.perf_counter() - started) * 1000)
            times[f"{service} {path}"] = samples
    return times


def start_variant(
    stack: ExitStack,
    postgres: Any,
    variant: Variant,
    index: int,
    keys: str,
    work: Path,
    args: argparse.Namespace,
) -> tuple[dict[str, str], dict[str, ServerProcess], ServerProcess, str]:
    """One variant's databases (migrated by its own sources, loaded with the base), services
    and console; (asyncpg DSNs, services, console, a customer with an open warning)."""
    urls = {name: create_postgres_database(postgres, f"{name}_{index}") for name in SERVICES}
    envs = {
        name: {**service_env(prefix, urls[name], keys), **variant.env}
        for name, (_, prefix) in SERVICES.items()
    }
    logs = work / f"v{index}"
    logs.mkdir(parents=True, exist_ok=True)
    for name, (package, _) in SERVICES.items():
        run_migration(package, envs[name], logs / f"{name}.log", timeout=300)
    dsn = {name: base.asyncpg_dsn(url) for name, url in urls.items()}
    started = time.perf_counter()
    loaded, warned, example = asyncio.run(console_base.load(dsn, args.customers, args.seed))
    print(f"{variant.name}: loaded {loaded:,} customers, {warned:,} open warnings in "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    servers = {
        name: stack.enter_context(
            ServerProcess(name, f"{package}.app:create_app", envs[name], logs / f"{name}.log")
        )
        for name, (package, _) in SERVICES.items()
    }
    console_env = {
        **os.environ,
        "CONSOLE_ENVIRONMENT": "development",
        "CONSOLE_LOG_LEVEL": "WARNING",
        **{
            f"CONSOLE_{name.upper()}_SERVICE_URL": server.base_url
            for name, server in servers.items()
        },
        **variant.env,
    }
    console = stack.enter_context(
        ServerProcess("console", "crm_console.app:create_app", console_env, logs / "console.log")
    )
    return dsn, servers, console, example


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, default=None, help="keep logs in this folder")
    parser.add_argument(
        "--baseline",
        default=None,
        help="also run REF's sources (own databases, same base), pages interleaved",
    )
    parser.add_argument("--explain", action="store_true", help="print the slow calls' plans")
    args = parser.parse_args()
    print_header(f"console pages over {args.customers:,} customers")
    key, keys = make_api_key("console-bench")
    with ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        work.mkdir(parents=True, exist_ok=True)
        variants = [Variant("current", {})]
        if args.baseline:
            commit, env = export_sources(args.baseline, work / "baseline")
            variants.insert(0, Variant(f"baseline {commit}", env))
        postgres = stack.enter_context(embedded_postgres())
        started = {
            variant.name: start_variant(stack, postgres, variant, i, keys, work, args)
            for i, variant in enumerate(variants)
        }
        load_before = ", ".join(f"{v:.2f}" for v in os.getloadavg())
        day = base.STATE_DATE.date().isoformat()
        example = started[variants[-1].name][3]
        pages = {
            "Today": f"/?as_of={day}",
            "Today's health strip (htmx)": "/health-strip",
            "Customer 360": f"/customers/{example}",
            "Customer search": "/customers?by=email&q=nobody%40example.com",
            "Segments and value": "/segments",
            "Lifecycle": f"/lifecycle?as_of={day}",
            "Playbooks": "/playbooks",
            "Rule edit": "/playbooks/rules/warning-retention-offer",
            "Lifecycle rules": "/playbooks/lifecycle-rules",
            "Exports": "/exports",
        }
        clients = {
            name: stack.enter_context(
                httpx.Client(base_url=console.base_url, timeout=120, trust_env=False)
            )
            for name, (_, _, console, _) in started.items()
        }
        for client in clients.values():
            log_in(client, key)
        times = time_pages(clients, pages, args.rounds)
        exports = {}
        for name, client in clients.items():
            began = time.perf_counter()
            export = client.get("/exports/warnings.csv")
            exports[name] = (export.text.count("\n") - 1, time.perf_counter() - began)
        calls = [
            ("lifecycle", "/v1/warnings/at-risk?limit=50"),
            ("lifecycle", f"/v1/analytics/warnings?raised_from={day}"),
            ("scoring", "/v1/segments"),
            ("lifecycle", "/v1/analytics/distributions?bins=20"),
            ("lifecycle", f"/v1/analytics/stages/monthly?to={day}&months=12"),
            ("lifecycle", f"/v1/analytics/cohorts?to_month={day[:7]}"),
            ("notification", "/v1/notifications/outcomes"),
            ("notification", "/v1/rules"),
            ("profile", "/metrics"),
            ("lifecycle", "/metrics"),
        ]
        breakdown = {
            name: time_service_calls(servers, key, calls, args.rounds)
            for name, (_, servers, _, _) in started.items()
        }
        plans = {
            name: asyncio.run(console_base.explain(dsn))
            for name, (dsn, _, _, _) in started.items()
            if args.explain
        }
        load_after = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    page_rows = [
        (
            name,
            variant,
            f"{statistics.median(samples):.0f}",
            f"{p95(samples):.0f}",
            f"{max(samples):.0f}",
            "yes" if p95(samples) < GOAL_MS else "NO",
        )
        for name in pages
        for variant, by_page in times.items()
        for samples in [by_page[name]]
    ]
    print()
    headers = ["page", "tree", "median ms", "p95 ms", "max ms", f"p95 < {GOAL_MS:.0f} ms"]
    print(format_table(headers, page_rows))
    call_rows = [
        (call, variant, f"{statistics.median(samples):.0f}", f"{p95(samples):.0f}")
        for call in breakdown[variants[-1].name]
        for variant, by_call in breakdown.items()
        for samples in [by_call[call]]
    ]
    print()
    print(format_table(["service call behind a page", "tree", "median ms", "p95 ms"], call_rows))
    for name, (lines, seconds) in exports.items():
        print(f"\n{name}: warnings CSV export, {lines:,} rows in {seconds:.2f} s")
    for name, lines in plans.items():
        print(f"\nplans, {name}:\n" + "\n".join(lines))
    print(f"load average before the timing: {load_before}; after the run: {load_after}")
    return 0


if __name__ == "__main__":
    run_main(main)
