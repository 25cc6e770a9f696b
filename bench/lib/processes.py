"""The processes a benchmark starts: server processes, migrations, CPU time, clean exits.

Everything here runs in the benchmark process; the services under test always run as separate
``python -m uvicorn`` processes, started and stopped by :class:`ServerProcess`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil

from crm_shared.testing import free_loopback_port

BENCH_DIR = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# --------------------------------------------------------------------------------------------
# Client

# uvicorn closes a keep-alive connection that has been idle this long (its default, which the
# services' deployment keeps); ServerProcess passes it explicitly so the two stay tied.
SERVER_KEEP_ALIVE_SECONDS = 5


# --------------------------------------------------------------------------------------------
# Process lifetime


def install_termination_handlers() -> None:
    """Turn SIGTERM and SIGHUP into SystemExit, so ``finally``/ExitStack cleanup runs.

    Ctrl-C already raises KeyboardInterrupt. The servers run in their own session, so the
    terminal's SIGINT does not reach them; the benchmark stops them itself.
    """

    def _exit(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None:
            signal.signal(number, _exit)


def run_main(main: Callable[[], int]) -> None:
    """Run a benchmark's main; Ctrl-C exits with 130 after the cleanup has run."""
    try:
        code = main()
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        code = 130
    raise SystemExit(code)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def run_migrations(env: dict[str, str], log_path: Path, timeout: float = 120.0) -> None:
    """``python -m profile_service.migrate`` with the service's environment."""
    run_migration("profile_service", env, log_path, timeout)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class ServerProcess:
    """A uvicorn process serving one app factory on a free loopback port."""

    name: str
    factory: str
    env: dict[str, str]
    log_path: Path
    ready_path: str = "/healthz"
    app_dir: Path | None = None
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} not started"
        return self.process.pid

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start the process and wait until ``ready_path`` answers 200."""
        self.port = free_loopback_port()
        command = [PYTHON, "-m", "uvicorn", "--factory", self.factory]
        if self.app_dir is not None:
            command += ["--app-dir", str(self.app_dir)]
        command += [
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--timeout-keep-alive",
            str(SERVER_KEEP_ALIVE_SECONDS),
        ]
        with self.log_path.open("ab") as log:
            # Own session: Ctrl-C in the terminal reaches only the benchmark, which then
            # stops the server itself (SIGTERM, then SIGKILL).
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()  # __exit__ does not run when __enter__ fails (Ctrl-C while waiting too)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        url = self.base_url + self.ready_path
        with httpx.Client(timeout=2.0) as client:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.process.returncode}:\n{tail(self.log_path)}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(url).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s")
                time.sleep(0.1)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM, wait for a graceful shutdown, SIGKILL if it does not come."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __enter__(self) -> ServerProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants.

    Live descendants count with their own times; ones that exited (a PostgreSQL backend of a
    closed connection) with their parent's ``children_*`` times once reaped.
    """
    total = 0.0
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


class MachineCpu:
    """System-wide CPU busy time between :meth:`start` and :meth:`busy_cores` (all processes)."""

    def __init__(self) -> None:
        self._start = psutil.cpu_times()

    @staticmethod
    def _busy_and_total(times: Any) -> tuple[float, float]:
        total = sum(times)
        idle = times.idle + getattr(times, "iowait", 0.0)
        return total - idle, total

    def busy_share(self) -> float:
        """Busy share of all cores since construction, 0..1 (1 = every core busy)."""
        busy0, total0 = self._busy_and_total(self._start)
        busy1, total1 = self._busy_and_total(psutil.cpu_times())
        return (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0


def run_async(main: Callable[[], Any]) -> Any:
    """Run a coroutine function on uvloop when it is installed (as uvicorn does), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main())


# --------------------------------------------------------------------------------------------
# Machine and output


# --------------------------------------------------------------------------------------------
# Customer data


Row = dict[str, Any]


# --------------------------------------------------------------------------------------------
# A service's migration, and a local SMTP server in its own process


def migrate_service(package: str, env_prefix: str, database_url: str, log_path: Path) -> None:
    """``python -m <package>.migrate`` with ``<env_prefix>DATABASE_URL`` set to the database."""
    run_migration(package, {**os.environ, f"{env_prefix}DATABASE_URL": database_url}, log_path)


def run_migration(
    package: str, env: Mapping[str, str], log_path: Path, timeout: float = 180
) -> None:
    """``python -m <package>.migrate`` with ``env``, its output appended to ``log_path``."""
    with log_path.open("ab") as log:
        result = subprocess.run(
            [PYTHON, "-m", f"{package}.migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"migration failed (exit {result.returncode}):\n{tail(log_path)}")


def inherited_settings(prefix: str, ours: Collection[str]) -> list[str]:
    """``<prefix>*`` variables set by the caller that a service inherits unchanged."""
    return sorted(
        f"{k}={v}" for k, v in os.environ.items() if k.startswith(prefix) and k not in ours
    )
