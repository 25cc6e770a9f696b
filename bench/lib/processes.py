"""Shared helpers of the benchmarks: server processes, API keys, test data, tables, machine info.

Everything here runs in the benchmark process; the services under test always run as separate
``python -m uvicorn`` processes, started and stopped by :class:`ServerProcess`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import platform
import random
import signal
import subprocess
import sys
import time
import unicodedata
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil

from crm_shared import Scope, generate_api_key
from crm_shared.testing import free_loopback_port

BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
PROFILE_APP = "profile_service.app:create_app"
SHARED_CORES_NOTE = (
    "note: the load generator (this process), the server and the database share the same "
    "{cores} CPU cores; the figures include that contention."
)

# --------------------------------------------------------------------------------------------
# Client

# uvicorn closes a keep-alive connection that has been idle this long (its default, which the
# services' deployment keeps); ServerProcess passes it explicitly so the two stay tied.
SERVER_KEEP_ALIVE_SECONDS = 5


def client_limits(connections: int) -> httpx.Limits:
    """Pool limits for a load-generating client: ``connections`` kept alive, none for too long.

    httpx also keeps an idle connection for 5 s, counted from when it has read a response,
    which is a little after uvicorn armed its own 5 s timer. Under load httpcore always picks
    the first idle connection, so the last ones in the pool are reused only in bursts, some
    just as uvicorn closes them: the request then meets a closed socket and fails with
    ``ReadError`` (a reset, anyio's ``BrokenResourceError``) or ``RemoteProtocolError``, and the
    server logs nothing because it never read the request. Letting the client give up idle
    connections well before the server does closes that race; it is the rule for any client
    or proxy in front of a keep-alive server.
    """
    return httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=SERVER_KEEP_ALIVE_SECONDS / 2,
    )


def cache_missing_sniffio() -> bool:
    """Make a failed ``import sniffio`` cheap; return whether sniffio is missing.

    httpcore imports sniffio inside ``current_async_library()``, about twice per request. The
    anyio installed here (4.16) no longer pulls sniffio in, so every call searches sys.path
    again for a module that is not there (about 0.4 ms of CPU per call here), which makes the
    load generator, not the server, the bottleneck. A ``None`` entry in sys.modules makes the
    import fail at once; httpcore then assumes asyncio, which is what it would have found.
    """
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
        return True
    return False


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


def make_api_key(name: str = "bench") -> tuple[str, str]:
    """A key with every scope, and the JSON list of records for ``PROFILE_API_KEYS``."""
    key, record = generate_api_key(name, [Scope.READ, Scope.WRITE, Scope.ADMIN])
    return key, json.dumps([record.model_dump(mode="json")])


def profile_env(database_url: str, api_keys_json: str) -> dict[str, str]:
    """The environment of a profile-service process (and of its migration)."""
    env = dict(os.environ)
    env.update(
        {
            "PROFILE_DATABASE_URL": database_url,
            "PROFILE_KAFKA_ENABLED": "false",
            "PROFILE_ENVIRONMENT": "test",
            "PROFILE_API_KEYS": api_keys_json,
            "PROFILE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def inherited_profile_settings() -> list[str]:
    """``PROFILE_*`` variables set by the caller that the benchmark passes on unchanged."""
    ours = {
        "PROFILE_DATABASE_URL",
        "PROFILE_KAFKA_ENABLED",
        "PROFILE_ENVIRONMENT",
        "PROFILE_API_KEYS",
        "PROFILE_LOG_LEVEL",
    }
    return sorted(
        f"{k}={v}" for k, v in os.environ.items() if k.startswith("PROFILE_") and k not in ours
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def run_migrations(env: dict[str, str], log_path: Path, timeout: float = 120.0) -> None:
    """``python -m profile_service.migrate`` with the service's environment."""
    with log_path.open("ab") as log:
        result = subprocess.run(
            [PYTHON, "-m", "profile_service.migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"migration failed (exit {result.returncode}):\n{tail(log_path)}")


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


@contextlib.contextmanager
def embedded_postgres() -> Iterator[Any]:
    """A private PostgreSQL server (crm_shared.testing.EmbeddedPostgres), stopped on exit."""
    from crm_shared.testing import EmbeddedPostgres

    server = EmbeddedPostgres()
    try:
        with warnings.catch_warnings():
            # platformdirs (used by embedded-postgres) warns when XDG_RUNTIME_DIR is unset.
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
            server.start()
        yield server
    finally:
        server.stop()


def create_postgres_database(server: Any, name: str) -> str:
    """A fresh database on the embedded server; its SQLAlchemy (asyncpg) URL."""
    url: str = asyncio.run(server.create_database(name))
    return url


@dataclass(frozen=True)
class ProfileBackends:
    """The broker and PostgreSQL a profile-service benchmark runs on, and the service's env."""

    env: dict[str, str]
    bootstrap: str
    postgres: Any


def start_profile_backends(
    stack: contextlib.ExitStack, work: Path, api_keys_json: str
) -> ProfileBackends:
    """Start the embedded broker and PostgreSQL (stopped by `stack`) for profile-service with
    Kafka on, so its 360 read model fills from the topics."""
    from crm_shared.testing import EmbeddedBroker

    broker = EmbeddedBroker(log_path=work / "broker.log")
    bootstrap = broker.start()
    stack.callback(broker.stop)
    postgres = stack.enter_context(embedded_postgres())
    env = profile_env(create_postgres_database(postgres, "bench"), api_keys_json)
    env.update({"PROFILE_KAFKA_ENABLED": "true", "PROFILE_KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    return ProfileBackends(env, bootstrap, postgres)


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


def machine_summary() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load average": load,
    }


def print_header(title: str) -> None:
    print(f"# {title}")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    inherited = inherited_profile_settings()
    if inherited:
        print("inherited settings:", " ".join(inherited))
    print(SHARED_CORES_NOTE.format(cores=os.cpu_count()))
    print(flush=True)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable as plain text too), numbers right-aligned."""
    cells = [[str(h) for h in headers], *[[_cell(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            cell.rjust(width) if is_num else cell.ljust(width)
            for cell, width, is_num in zip(row, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    separator = "|" + "|".join(
        "-" * (w + 1) + ":" if is_num else "-" * (w + 2)
        for w, is_num in zip(widths, numeric, strict=True)
    )
    return "\n".join([line(cells[0]), separator + "|", *(line(row) for row in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "").rstrip("%"))
    except ValueError:
        return False
    return True


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(share * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


# --------------------------------------------------------------------------------------------
# Customer data

COLUMNS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "time_zone",
    "locale",
    "tags",
)

Row = dict[str, Any]


@dataclass(frozen=True)
class _Country:
    phone: Callable[[int], str]
    time_zones: tuple[str, ...]
    locale: str
    first_names: tuple[str, ...]
    last_names: tuple[str, ...]
    domains: tuple[str, ...]


_UK_MOBILE = ("7400", "7500", "7412", "7800")
_COUNTRIES = (
    _Country(
        phone=lambda n: f"+49 151 {n % 100_000_000:08d}",
        time_zones=("Europe/Berlin",),
        locale="de-DE",
        first_names=("Anna", "Lukas", "Jürgen", "Sophie", "Maximilian", "Lea", "Jörg", "Emma"),
        last_names=("Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Becker", "Groß"),
        domains=("gmx.de", "web.de", "t-online.de", "gmail.com"),
    ),
    _Country(
        phone=lambda n: f"+1 415-{200 + (n // 10_000) % 800:03d}-{n % 10_000:04d}",
        time_zones=("America/New_York", "America/Chicago", "America/Los_Angeles"),
        locale="en-US",
        first_names=("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "Chloé"),
        last_names=("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "O'Neil"),
        domains=("gmail.com", "yahoo.com", "outlook.com", "icloud.com"),
    ),
    _Country(
        phone=lambda n: f"+44 {_UK_MOBILE[(n // 1_000_000) % 4]} {n % 1_000_000:06d}",
        time_zones=("Europe/London",),
        locale="en_GB",
        first_names=("Oliver", "Amelia", "Harry", "Isla", "George", "Ava", "Zoë"),
        last_names=("Taylor", "Davies", "Evans", "Thomas", "Roberts", "Walker"),
        domains=("btinternet.com", "gmail.com", "hotmail.co.uk"),
    ),
    _Country(
        phone=lambda n: f"+33 6 {n % 100_000_000:08d}",
        time_zones=("Europe/Paris",),
        locale="fr-FR",
        first_names=("Léa", "Hugo", "Chloé", "Louis", "Inès", "Gabriel", "François"),
        last_names=("Martin", "Bernard", "Dubois", "Lefèvre", "Moreau", "Laurent"),
        domains=("orange.fr", "free.fr", "laposte.net", "gmail.com"),
    ),
    _Country(
        phone=lambda n: f"+34 6{n % 100_000_000:08d}",
        time_zones=("Europe/Madrid",),
        locale="es-ES",
        first_names=("Lucía", "Hugo", "Martina", "Mateo", "Sofía", "Álvaro"),
        last_names=("García", "Fernández", "González", "Rodríguez", "López", "Núñez"),
        domains=("telefonica.net", "gmail.com", "hotmail.es"),
    ),
)
_TAGS = ("newsletter", "vip", "wholesale", "source:shopify", "source:pos", "b2b", "gift-buyer")
_INVALID_KINDS = (
    "email",
    "email",
    "phone",
    "time_zone",
    "locale",
    "tags",
    "missing_identity",
)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


@dataclass
class CustomerRows:
    """Deterministic, realistic customer rows for imports.

    ``invalid_share`` of the rows carry one defect (bad email, phone, time zone, locale or
    tag, or no identity at all); ``duplicate_share`` repeat an earlier valid row's email
    (sometimes in another case) with no external id or phone, so they match that customer.
    The counters say what was generated, to compare with the import's report.
    """

    count: int
    seed: int = 1
    invalid_share: float = 0.02
    duplicate_share: float = 0.03
    invalid: int = 0
    duplicates: int = 0
    unique_valid: int = 0

    def __iter__(self) -> Iterator[Row]:
        rng = random.Random(self.seed)
        self.invalid = self.duplicates = self.unique_valid = 0
        with_email: list[Row] = []
        for n in range(self.count):
            roll = rng.random()
            if roll < self.invalid_share:
                self.invalid += 1
                yield self._invalid(rng, n)
            elif roll < self.invalid_share + self.duplicate_share and with_email:
                self.duplicates += 1
                yield self._duplicate(rng, rng.choice(with_email))
            else:
                self.unique_valid += 1
                row = self._valid(rng, n)
                if row["email"]:
                    with_email.append(row)
                yield row

    def _valid(self, rng: random.Random, n: int) -> Row:
        country = rng.choice(_COUNTRIES)
        first = rng.choice(country.first_names)
        last = rng.choice(country.last_names)
        email = f"{_ascii(first)}.{_ascii(last)}{n}@{rng.choice(country.domains)}"
        if rng.random() < 0.1:
            email = email.title()  # normalised to lower case by the service
        has_email = rng.random() < 0.95
        has_phone = rng.random() < 0.7 or not has_email
        return {
            "external_id": f"shop:{100_000 + n}" if rng.random() < 0.9 or not has_email else "",
            "email": email if has_email else "",
            "phone": country.phone(n) if has_phone else "",
            "first_name": first,
            "last_name": last if rng.random() < 0.95 else "",
            "time_zone": rng.choice(country.time_zones) if rng.random() < 0.85 else "",
            "locale": country.locale if rng.random() < 0.85 else "",
            "tags": rng.sample(_TAGS, k=rng.choice((0, 0, 1, 1, 2, 3))),
        }

    def _invalid(self, rng: random.Random, n: int) -> Row:
        row = self._valid(rng, n)
        kind = rng.choice(_INVALID_KINDS)
        if kind == "email":
            row["email"] = rng.choice(("anna.example.com", "bob@", "carl@@mail.de", "x y@z.com"))
        elif kind == "phone":
            row["phone"] = rng.choice(("+49 123", "call me maybe", "+999 1234567"))
        elif kind == "time_zone":
            row["time_zone"] = rng.choice(("Mars/Olympus_Mons", "CEST+2", "Europe/Atlantis"))
        elif kind == "locale":
            row["locale"] = rng.choice(("german", "english-uk", "12"))
        elif kind == "tags":
            row["tags"] = ["vip!", "newsletter"]
        else:
            row.update(external_id="", email="", phone="")
        return row

    def _duplicate(self, rng: random.Random, original: Row) -> Row:
        email = original["email"]
        return {
            "external_id": "",
            "email": email.upper() if rng.random() < 0.5 else email,
            "phone": "",
            "first_name": original["first_name"],
            "last_name": original["last_name"],
            "time_zone": "",
            "locale": original["locale"],
            "tags": [*original["tags"], "repeat-buyer"],
        }


def write_csv(rows: CustomerRows, path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([",".join(row[c]) if c == "tags" else row[c] for c in COLUMNS])


def write_ndjson(rows: CustomerRows, path: Path) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            present = {c: row[c] for c in COLUMNS if row[c]}
            out.write(json.dumps(present, ensure_ascii=False, separators=(",", ":")) + "\n")


def csv_bytes(rows: CustomerRows) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([",".join(row[c]) if c == "tags" else row[c] for c in COLUMNS])
    return out.getvalue().encode()


# --------------------------------------------------------------------------------------------
# A service's migration, and a local SMTP server in its own process


def migrate_service(package: str, env_prefix: str, database_url: str, log_path: Path) -> None:
    """``python -m <package>.migrate`` with ``<env_prefix>DATABASE_URL`` set to the database."""
    env = {**os.environ, f"{env_prefix}DATABASE_URL": database_url}
    with log_path.open("ab") as log:
        result = subprocess.run(
            [PYTHON, "-m", f"{package}.migrate"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=180,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"migration failed (exit {result.returncode}):\n{tail(log_path)}")


@dataclass(frozen=True)
class SinkReport:
    """What the SMTP sink accepted: one entry per message, in arrival order."""

    notification_ids: list[str]  # the X-CRM-Notification-Id header ("" when missing)
    message_ids: list[str]  # the Message-ID header ("" when missing)
    connections: int  # SMTP sessions opened since the last reset


class SmtpSinkProcess:
    """An aiosmtpd server on a free loopback port, in its own process, keeping only headers.

    The tests' sink (``notification_servers.smtp_sink``) runs in the test's process and parses
    every message with the email package; for a throughput figure that would share the GIL
    with the code under test. This one runs as ``python -c`` in its own session, reads only
    the two id headers of each message, and answers ``report`` and ``reset`` on its stdin.
    """

    def __init__(self, log_path: Path) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.log_path = log_path
        self.process: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "SMTP sink not started"
        return self.process.pid

    def start(self) -> SmtpSinkProcess:
        self.port = free_loopback_port()
        code = (
            f"import sys; sys.path.insert(0, {str(BENCH_DIR)!r}); "
            f"import _support; _support.serve_smtp_sink({self.port})"
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-c", code],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        try:
            if self._answer() != "ready":
                raise RuntimeError(f"SMTP sink did not start:\n{tail(self.log_path)}")
        except BaseException:
            self.stop()
            raise
        return self

    def _answer(self, command: str | None = None) -> str:
        assert self.process is not None
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def report(self) -> SinkReport:
        data = json.loads(self._answer("report"))
        return SinkReport(data["notification_ids"], data["message_ids"], data["connections"])

    def reset(self) -> None:
        self._answer("reset")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()  # the sink leaves its loop when stdin ends
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def __enter__(self) -> SmtpSinkProcess:
        return self.start() if self.process is None else self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def serve_smtp_sink(port: int) -> None:
    """The sink process's main (see :class:`SmtpSinkProcess`)."""
    import re
    import threading

    from aiosmtpd.controller import Controller  # type: ignore[import-untyped]

    header = re.compile(rb"^(X-CRM-Notification-Id|Message-ID):[ \t]*(.*?)\r?$", re.I | re.M)
    lock = threading.Lock()
    notification_ids: list[str] = []
    message_ids: list[str] = []
    connections = 0

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
            nonlocal connections
            with lock:
                connections += 1
            session.host_name = hostname
            return responses

        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            head = envelope.content.split(b"\r\n\r\n", 1)[0]
            found = {name.lower(): value for name, value in header.findall(head)}
            with lock:
                notification_ids.append(found.get(b"x-crm-notification-id", b"").decode())
                message_ids.append(found.get(b"message-id", b"").decode())
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        for line in sys.stdin:
            command = line.strip()
            with lock:
                if command == "report":
                    report = {
                        "notification_ids": notification_ids,
                        "message_ids": message_ids,
                        "connections": connections,
                    }
                    print(json.dumps(report), flush=True)
                elif command == "reset":
                    notification_ids.clear()
                    message_ids.clear()
                    connections = 0
                    print("ok", flush=True)
    finally:
        controller.stop()


def sources_digest(*packages: str) -> str:
    """A short sha256 of the named packages' Python sources (others edit them meanwhile)."""
    import hashlib
    import importlib

    digest = hashlib.sha256()
    for name in packages:
        root = Path(importlib.import_module(name).__file__ or "").parent
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root.parent)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
