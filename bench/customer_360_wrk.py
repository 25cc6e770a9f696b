"""Customer 360 reads under a C load generator: ``wrk`` against profile-service and a bare app.

customer_360.py's Python client saturates a core by itself, so its ratio measures the client.
Here the load comes from ``wrk -t1 -c32`` (Debian package ``wrk``, installed with apt-get when
missing), which spends a few per cent of a core at these rates. The read model is filled the
way customer_360.py fills it (profile-service on the embedded PostgreSQL with Kafka on,
customers imported, then scores, stages, warnings and message outcomes published and
consumed); a Lua script rotates over the customers' ids and sends the ``X-API-Key`` header.

Targets, each a single uvicorn worker, measured in alternation in the same run:

- ``bare``: customer_360's bare FastAPI app returning the same body (one of the real 360s);
- ``profile``: profile-service from this checkout;
- ``profile-uncached`` (``--uncached``): the same with its 360 cache off
  (``PROFILE_CUSTOMER_360_CACHE_SECONDS=0``): every read goes to the database; with
  ``--baseline``, each baseline is also run that way (``profile@REF-uncached``);
- ``profile@REF`` (``--baseline REF``, repeatable): profile-service from a git commit (``git
  archive`` of its ``shared/src`` and ``services/profile-service/src`` put first on
  ``PYTHONPATH``), on the same database and broker: the code before a change (or before each
  of several), under the same load, in the same run.

``--py-spy DIR`` adds one more wrk run per profile target with py-spy recording the server
(collapsed stacks in DIR) and prints where its samples fell.

``--order-rate N`` runs a steady order stream during the whole measurement (warm-up
included): N orders a second, each the ``score.updated`` and ``lifecycle.stage_changed`` an
order makes scoring and lifecycle publish (lib/order_stream.py), consumed by the profile
targets while wrk reads. ``--orders-to`` picks their customers: ``read`` (the ones wrk
reads), ``others`` (``--other-customers`` more, seeded but never read) or ``both``.

    python bench/customer_360_wrk.py [--customers 200] [--duration 10] [--connections 32]
        [--rounds 2] [--uncached] [--baseline REF ...] [--py-spy DIR] [--seed 1]
        [--order-rate 200 [--orders-to both] [--other-customers 200]]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
from lib.backends import PROFILE_APP, make_api_key, start_profile_backends
from lib.baseline import short_commit
from lib.http_load import seed
from lib.order_stream import OrderStream
from lib.processes import (
    BENCH_DIR,
    ServerProcess,
    install_termination_handlers,
    run_main,
    run_migrations,
    tail,
)
from lib.report import format_table, print_header
from lib.view_events import (
    BARE_APP,
    BARE_BODY_ENV,
    FILL_TIMEOUT,
    SEED_TIMEOUT,
    publish_view_events,
    view_events,
    wait_until_consumed,
)
from lib.wrk import HEADERS, Target, WrkRun, ensure_wrk, run_wrk, write_lua

REPO = BENCH_DIR.parent
BASELINE_SOURCES = ("shared/src", "services/profile-service/src")
WARMUP_SECONDS = 3
GOAL_RATIO = 0.50
GOAL_P99_MS = 25.0


def baseline_pythonpath(ref: str, into: Path) -> str:
    """Extract the service's and the shared library's sources at `ref`; their PYTHONPATH.

    The venv's editable installs are ``.pth`` entries, which come after PYTHONPATH, so the
    old sources win for ``crm_shared`` and ``profile_service``; the dependencies are shared.
    """
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", ref, *BASELINE_SOURCES],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return os.pathsep.join(str(into / part) for part in BASELINE_SOURCES)


def cache_lookups(target: Target) -> tuple[float, float]:
    """The 360 cache's hits and misses so far, from the target's /metrics ((0, 0) if none)."""
    if target.db_pid is None:  # the bare app
        return 0.0, 0.0
    counts = {"hit": 0.0, "miss": 0.0}
    metrics = httpx.get(f"{target.server.base_url}/metrics", timeout=30, trust_env=False)
    for line in metrics.text.splitlines():
        if line.startswith('read_cache_lookups_total{cache="customer_360_changes"'):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = float(line.rsplit(" ", 1)[1])
    return counts["hit"], counts["miss"]


def hit_share(before: tuple[float, float], after: tuple[float, float]) -> str:
    """The share of the run's 360 reads the cache answered, as text ("" if none counted)."""
    hits, misses = after[0] - before[0], after[1] - before[1]
    return f", cache hits {100 * hits / (hits + misses):.0f}%" if hits + misses else ""


def profile_with_py_spy(
    wrk: str, target: Target, script: Path, args: argparse.Namespace, out: Path
) -> None:
    """A wrk run while py-spy samples the server; prints the hottest frames."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        raise RuntimeError("py-spy is missing: `make install` installs it (requirements/dev.txt)")
    collapsed = out / f"{target.name.replace('@', '-at-')}.collapsed.txt"
    record = [py_spy, "record", "--pid", str(target.server.pid), "--format", "raw"]
    record += ["--rate", "250", "--duration", str(args.duration + 1), "--nonblocking"]
    recorder = subprocess.Popen(
        [*record, "-o", str(collapsed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    run = run_wrk(wrk, target, script, args, args.duration, 0)
    _, err = recorder.communicate(timeout=60)
    print(f"\npy-spy of {target.name} under wrk ({run.rate:,.0f} req/s): {collapsed}")
    if not collapsed.exists():
        print(f"  py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
        return
    print(format_table(["inclusive", "own", "frame"], hottest_frames(collapsed, args.top)))


def hottest_frames(collapsed: Path, top: int) -> list[list[object]]:
    """Frames by the share of samples they are on (inclusive) and at the top of (own)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    rows: list[list[object]] = []
    for frame, count in inclusive.most_common(top):
        rows.append([f"{100 * count / total:.1f}%", f"{100 * own[frame] / total:.1f}%", frame])
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200, help="customers to seed")
    parser.add_argument("--notifications", type=int, default=5, help="messages per customer")
    parser.add_argument("--warning-share", type=float, default=0.3)
    parser.add_argument("--connections", type=int, default=32, help="wrk -c")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="alternate targets this often")
    parser.add_argument(
        "--baseline",
        metavar="REF",
        action="append",
        default=[],
        help="also profile-service at this commit (repeatable)",
    )
    parser.add_argument(
        "--uncached", action="store_true", help="also each profile variant with its 360 cache off"
    )
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile the servers too")
    parser.add_argument("--top", type=int, default=40, help="frames shown per py-spy profile")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--order-rate", type=float, default=0, help="orders/s published while measuring (0: none)"
    )
    parser.add_argument(
        "--orders-to",
        choices=("read", "others", "both"),
        default="both",
        help="the stream's customers: those wrk reads, others, or both",
    )
    parser.add_argument(
        "--other-customers", type=int, help="customers seeded for the stream only (--customers)"
    )
    args = parser.parse_args()
    others = 0
    if args.order_rate > 0 and args.orders_to != "read":
        others = args.customers if args.other_customers is None else args.other_customers
    install_termination_handlers()
    wrk = ensure_wrk()
    version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    print_header("GET /v1/customers/{id}/360 under wrk: profile-service on PostgreSQL vs bare")
    print(
        f"load: {(version.stdout + version.stderr).splitlines()[0]} -t1 -c{args.connections} "
        f"-d{args.duration}s x{args.rounds} rounds, ids rotated by Lua; "
        f"customers={args.customers} notifications/customer={args.notifications} "
        f"warning_share={args.warning_share} baselines={','.join(args.baseline) or '-'}; "
        + (
            f"order stream {args.order_rate:g}/s to {args.orders_to} customers ({others} not read)"
            if args.order_rate > 0
            else "no order stream"
        ),
        flush=True,
    )
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-wrk-")))
        key, records = make_api_key()
        backends = start_profile_backends(stack, work, records)
        env, bootstrap, postgres = backends.env, backends.bootstrap, backends.postgres
        run_migrations(env, work / "profile.log")
        # The process that imports and consumes is not measured: every measured profile-service
        # starts fresh after the fill, the same way, so none carries the fill's heap or role.
        profile = ServerProcess("profile-fill", PROFILE_APP, env, work / "profile-fill.log")
        stack.enter_context(profile)
        seeded = seed(profile.base_url, key, args.customers + others, args.seed, SEED_TIMEOUT)
        ids, unread = seeded[: args.customers], seeded[args.customers :]
        payloads = view_events(ids, args.notifications, args.warning_share, args.seed)
        asyncio.run(publish_view_events(bootstrap, payloads))
        filled = wait_until_consumed(profile, len(payloads), FILL_TIMEOUT)
        with httpx.Client(base_url=profile.base_url, headers={"X-API-Key": key}) as client:
            sample = client.get(f"/v1/customers/{ids[0]}/360")
            sample.raise_for_status()
        view = sample.json()
        print(
            f"seeded {len(ids)} customers; {len(payloads):,} view events consumed in "
            f"{filled:.1f} s; a 360 body: {len(sample.content):,} bytes, "
            f"notifications={len(view['recent_notifications'])} "
            f"scores={view['scores'] is not None} lifecycle={view['lifecycle'] is not None}",
            flush=True,
        )
        body_path = work / "bare-360.json"
        body_path.write_bytes(sample.content)
        bare = stack.enter_context(
            ServerProcess(
                "bare",
                BARE_APP,
                {**os.environ, BARE_BODY_ENV: str(body_path)},
                work / "bare.log",
                ready_path="/v1/customers/ready/360",
                app_dir=BENCH_DIR,
            )
        )
        profile.stop()
        targets = [Target("bare", bare)]
        # This checkout and each baseline, each also with its 360 cache off under --uncached.
        variants = [("profile", env)]
        for number, ref in enumerate(args.baseline):
            path = baseline_pythonpath(ref, work / f"baseline-{number}")
            variants.append((f"profile@{short_commit(ref)}", {**env, "PYTHONPATH": path}))
        if args.uncached:
            off = {"PROFILE_CUSTOMER_360_CACHE_SECONDS": "0"}
            variants += [(f"{name}-uncached", {**venv, **off}) for name, venv in variants]
        for name, variant_env in variants:
            log = work / f"{name.replace('@', '-at-')}.log"
            server = stack.enter_context(ServerProcess(name, PROFILE_APP, variant_env, log))
            targets.append(Target(name, server, postgres.pid()))
        script = write_lua(work / "rotate_ids.lua", ids, key)
        stream = None
        if args.order_rate > 0:
            streamed = {"read": ids, "others": unread, "both": ids + unread}[args.orders_to]
            stream = OrderStream(bootstrap, streamed, args.order_rate, args.seed).start()
        for target in targets:  # unmeasured: connections, caches and the pool warm up
            run_wrk(wrk, target, script, args, WARMUP_SECONDS, 0)
        runs: list[WrkRun] = []
        for number in range(1, args.rounds + 1):
            for target in targets:
                lookups = cache_lookups(target)
                run = run_wrk(wrk, target, script, args, args.duration, number)
                runs.append(run)
                print(
                    f"  {target.name} #{number}: {run.rate:,.0f} req/s, p50 {run.p50_ms:.1f} ms, "
                    f"p99 {run.p99_ms:.1f} ms, {1000 * run.server_cpu / max(run.requests, 1):.3f} "
                    f"ms server CPU/req{hit_share(lookups, cache_lookups(target))}"
                    + (f", errors {dict(run.errors)}" if run.errors else ""),
                    flush=True,
                )
                if run.errors:
                    print(f"  {target.name} log (last lines):\n{tail(target.server.log_path)}")
        if args.py_spy:
            args.py_spy.mkdir(parents=True, exist_ok=True)
            for target in targets[1:]:
                profile_with_py_spy(wrk, target, script, args, args.py_spy)
        if stream is not None:
            stream.stop()
            print(
                f"order stream: {stream.orders:,} orders in {stream.seconds:.0f} s "
                f"({stream.achieved_rate:,.0f}/s, {2 * stream.orders:,} events)",
                flush=True,
            )

    print()
    print(format_table(HEADERS, [run.row() for run in runs]))
    print()
    print(summary(runs, [t.name for t in targets]))
    print(
        "server CPU: the uvicorn process's CPU over the run (100% = one core); server and db "
        "ms/req: CPU milliseconds per request of the process and of PostgreSQL with its backends."
    )
    return 1 if any(run.errors for run in runs) else 0


def summary(runs: list[WrkRun], names: list[str]) -> str:
    """Medians over the rounds per target, each against bare, and the goals."""

    def median(name: str, value: str) -> float:
        return statistics.median(getattr(r, value) for r in runs if r.target == name)

    bare_rate, bare_p99 = median("bare", "rate"), median("bare", "p99_ms")
    lines = [f"bare: {bare_rate:,.0f} req/s, p99 {bare_p99:.1f} ms (medians over the rounds)"]
    for name in names[1:]:
        rate, p50, p99 = median(name, "rate"), median(name, "p50_ms"), median(name, "p99_ms")
        ratio = rate / bare_rate if bare_rate else 0.0
        met = ratio >= GOAL_RATIO and p99 < GOAL_P99_MS
        lines.append(
            f"{name}: {rate:,.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms; x{ratio:.2f} of "
            f"bare (goal x{GOAL_RATIO:.2f} and p99 < {GOAL_P99_MS:.0f} ms: "
            f"{'met' if met else 'not met'})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    run_main(main)
