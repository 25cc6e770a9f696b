"""Bulk-import rate: ``POST /v1/customers/import`` with 100,000 rows of CSV and of NDJSON.

Generates the files first (realistic rows, ~2% invalid, ~3% repeating an earlier row's email),
then for each format starts profile-service as a uvicorn process on a fresh database (SQLite;
with ``--postgres`` also the embedded PostgreSQL), streams the file to it in chunks from a
generator, and reports rows/s, the server's peak RSS (sampled every 0.2 s) and the
data-quality counts of the import's report.

    python bench/profile_import.py [--rows 100000] [--formats csv,ndjson] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from lib.backends import (
    PROFILE_APP,
    create_postgres_database,
    embedded_postgres,
    make_api_key,
    profile_env,
)
from lib.customers import CustomerRows, write_csv, write_ndjson
from lib.processes import (
    ServerProcess,
    install_termination_handlers,
    process_tree_cpu_seconds,
    run_main,
    run_migrations,
    sqlite_url,
)
from lib.py_spy import py_spy
from lib.report import format_table, print_header

FORMATS = {
    "csv": ("text/csv", write_csv),
    "ndjson": ("application/x-ndjson", write_ndjson),
}
MIB = 1024 * 1024


@dataclass
class ImportResult:
    target: str
    rows: int
    bytes: int
    seconds: float
    idle_rss: int
    peak_rss: int
    server_cpu: float
    db_cpu: float | None
    report: dict[str, Any]

    def row(self) -> list[object]:
        return [
            self.target,
            self.rows,
            self.seconds,
            self.rows / self.seconds,
            self.idle_rss / MIB,
            self.peak_rss / MIB,
            f"{100 * self.server_cpu / self.seconds:.0f}%",
            "-" if self.db_cpu is None else f"{100 * self.db_cpu / self.seconds:.0f}%",
            self.report["rows_valid"],
            self.report["rows_invalid"],
            self.report["customers_created"],
            self.report["customers_updated"],
            self.report["duplicates_in_file"],
        ]


HEADERS = [
    "target",
    "rows",
    "seconds",
    "rows/s",
    "RSS idle MiB",
    "RSS peak MiB",
    "server CPU",
    "db CPU",
    "rows_valid",
    "rows_invalid",
    "customers_created",
    "customers_updated",
    "duplicates_in_file",
]


class ImportFailed(RuntimeError):
    """One import did not produce a report; the others still run."""


class RssSampler:
    """Samples a process tree's RSS every ``interval`` s in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self._process = psutil.Process(pid)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self.peak = 0
        self.samples = 0

    def sample(self) -> int:
        try:
            processes = [self._process, *self._process.children(recursive=True)]
            rss: int = sum(p.memory_info().rss for p in processes)
        except psutil.Error:
            return 0
        self.peak = max(self.peak, rss)
        self.samples += 1
        return rss

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def file_chunks(path: Path, chunk_size: int) -> Iterator[bytes]:
    """The file in chunks, read as the upload goes: the body is never held in memory whole."""
    with path.open("rb") as data:
        while chunk := data.read(chunk_size):
            yield chunk


@contextlib.contextmanager
def py_spy_stacks(pid: int, directory: Path | None, target: str) -> Iterator[None]:
    """With a directory: sample ``pid`` with py-spy while the block runs (collapsed stacks)."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    output = directory / f"{target.replace(' ', '-')}.txt"
    try:
        with py_spy(pid, output, options=("--gil",)):
            yield
    finally:
        print(f"  py-spy stacks: {output}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows per file")
    parser.add_argument("--formats", default="csv,ndjson", help="comma-separated: csv, ndjson")
    parser.add_argument("--postgres", action="store_true", help="also on embedded PostgreSQL")
    parser.add_argument("--chunk-kib", type=int, default=64, help="upload chunk size")
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="import request timeout, s (httpx: for connect and for each write and read)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="copy the server logs to this directory")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="record each import with py-spy (must be installed) into DIR (collapsed stacks)",
    )
    args = parser.parse_args()
    formats = [name.strip() for name in args.formats.split(",") if name.strip()]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        parser.error(f"unknown formats: {', '.join(sorted(unknown))}")
    install_termination_handlers()
    print_header("profile-service bulk import: POST /v1/customers/import")

    results: list[ImportResult] = []
    failures: list[str] = []
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crm-bench-import-")))
        key, records = make_api_key()
        rows = CustomerRows(args.rows, seed=args.seed)
        files: dict[str, Path] = {}
        for name in formats:
            started = time.perf_counter()
            files[name] = work / f"customers.{name}"
            FORMATS[name][1](rows, files[name])
            print(
                f"generated {files[name].name}: {args.rows:,} rows, "
                f"{files[name].stat().st_size / MIB:.1f} MiB "
                f"in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        print(
            f"planned: {rows.invalid:,} invalid rows, {rows.duplicates:,} duplicates by email, "
            f"{rows.unique_valid:,} new customers",
            flush=True,
        )

        backends: list[tuple[str, Any]] = [("sqlite", None)]
        if args.postgres:
            backends.append(("postgres", stack.enter_context(embedded_postgres())))
        for backend, postgres in backends:
            for name in formats:
                target = f"{backend} {name}"
                if postgres is None:
                    url, db_pid = sqlite_url(work / f"import-{name}.db"), None
                else:
                    url, db_pid = (
                        create_postgres_database(postgres, f"import_{name}"),
                        postgres.pid(),
                    )
                try:
                    result = run_import(
                        target, url, db_pid, files[name], FORMATS[name][0], key, records, work, args
                    )
                except ImportFailed as failure:
                    failures.append(str(failure))
                    print(f"  {failure}", file=sys.stderr, flush=True)
                    continue
                results.append(result)
                print(
                    f"  {target}: {result.rows / result.seconds:,.0f} rows/s "
                    f"({result.seconds:.1f} s), peak RSS {result.peak_rss / MIB:.0f} MiB",
                    flush=True,
                )
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for log in work.glob("*.log"):
                (args.keep / log.name).write_bytes(log.read_bytes())

    print()
    print(format_table(HEADERS, [result.row() for result in results]))
    print()
    print(
        f"planned per file: rows_invalid={rows.invalid:,}, duplicates_in_file={rows.duplicates:,},"
        f" customers_created={rows.unique_valid:,}"
    )
    for result in results:
        report = result.report
        got = (report["rows_invalid"], report["duplicates_in_file"], report["customers_created"])
        if got != (rows.invalid, rows.duplicates, rows.unique_valid):
            print(f"{result.target}: report differs from the plan: {got}")
        reasons = ", ".join(f"{code}={count}" for code, count in report["invalid_reasons"].items())
        print(f"{result.target}: invalid reasons: {reasons}")
    print(
        "\nseconds: from the first byte sent to the report received (parsing, validation and "
        "storage run while the body streams in).\nRSS: uvicorn process; idle = after start, "
        "before the import. server/db CPU: CPU time of uvicorn and of PostgreSQL as a share of "
        f"one core (200% = both cores of {os.cpu_count()})."
    )
    for message in failures:
        print(f"FAILED {message}", file=sys.stderr)
    return 1 if failures else 0


def run_import(
    target: str,
    database_url: str,
    db_pid: int | None,
    path: Path,
    content_type: str,
    key: str,
    records: str,
    work: Path,
    args: argparse.Namespace,
) -> ImportResult:
    """Migrate a fresh database, start profile-service on it, stream one file, stop it."""
    env = profile_env(database_url, records)
    log = work / f"{target.replace(' ', '-')}.log"
    run_migrations(env, log)
    with ServerProcess(target, PROFILE_APP, env, log) as server:
        sampler = RssSampler(server.pid)
        time.sleep(1.0)  # let the process settle before the idle sample
        idle_rss = sampler.sample()
        server_cpu = process_tree_cpu_seconds(server.pid)
        db_cpu = process_tree_cpu_seconds(db_pid) if db_pid else None
        with (
            httpx.Client(
                base_url=server.base_url,
                headers={"X-API-Key": key},
                timeout=httpx.Timeout(args.timeout),
            ) as client,
            sampler,
            py_spy_stacks(server.pid, args.py_spy, target),
        ):
            started = time.perf_counter()
            try:
                response = client.post(
                    "/v1/customers/import",
                    content=file_chunks(path, args.chunk_kib * 1024),
                    headers={"Content-Type": content_type},
                )
            except httpx.TimeoutException as error:
                seconds = time.perf_counter() - started
                raise ImportFailed(
                    f"{target}: no answer within --timeout {args.timeout:.0f} s "
                    f"({type(error).__name__} after {seconds:.0f} s)"
                ) from error
            seconds = time.perf_counter() - started
        server_cpu = process_tree_cpu_seconds(server.pid) - server_cpu
        if db_pid and db_cpu is not None:
            db_cpu = process_tree_cpu_seconds(db_pid) - db_cpu
    if response.status_code != 200:
        raise ImportFailed(f"{target}: HTTP {response.status_code}: {response.text[:2000]}")
    report: dict[str, Any] = response.json()
    return ImportResult(
        target,
        report["rows_read"],
        path.stat().st_size,
        seconds,
        idle_rss,
        sampler.peak,
        server_cpu,
        db_cpu,
        report,
    )


if __name__ == "__main__":
    run_main(main)
