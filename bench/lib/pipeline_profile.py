"""`pipeline.py --profile DIR`: where each order's CPU goes, per process and per SQL statement.

During each measured phase, every service process is sampled with py-spy (100 Hz, collapsed
stacks, `--nonblocking` so the process is never paused; py-spy is not a project dependency:
`.venv/bin/pip install py-spy`) and PostgreSQL's `pg_stat_statements` is reset at the start and
read at the end. The extension needs `shared_preload_libraries`, which the embedded server
only reads at start: `enable_statement_statistics` sets it with ALTER SYSTEM and restarts the
server once, before the warm-up (the services reconnect as they would after an outage).

What is printed per phase: for each service, the share of its samples under a few named parts
of the chain (inclusive: a sample counts for every part on its stack) and the functions of our
own code with the most samples under them; then PostgreSQL's statements by total execution
time, with calls and rows per order. The raw stacks stay in DIR for a flame graph
(speedscope.app and inferno read the collapsed format).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from lib.postgres_cpu import PostgresCpu, postgres_cpu
from lib.py_spy import py_spy

# Named parts of the chain: a sample counts under a part when a frame on its stack matches.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("consumer: decode (pydantic)", ("decode_event ", "decode (crm_shared/_decoding")),
    ("consumer: whole batch transaction", ("EventConsumer._apply ",)),
    ("consumer: batch handler (apply_batch)", ("finish (", "apply_events ", "apply_batch ")),
    ("outbox: rows added", ("add_many_to_outbox ", "add_to_outbox ")),
    ("events built (build_event)", ("build_event ",)),
    ("outbox relay", ("OutboxRelay.",)),
    ("scoring: re-score loop", ("drain_pending_rescores ",)),
    ("notification: delivery (deliver_due)", ("deliver_due ",)),
    # py-spy names a frame `function (package/module.py:line)`.
    ("SQLAlchemy (any)", ("(sqlalchemy/",)),
    ("asyncpg (any)", ("(asyncpg/",)),
    ("aiokafka (any)", ("(aiokafka/",)),
    ("pydantic (any)", ("(pydantic/", "(pydantic_core/")),
    # Not "(uvicorn/": uvicorn's server frames are under every stack (it runs the event loop).
    ("HTTP requests (the benchmark's metric polls)", ("(starlette/", "(fastapi/")),
)
_OUR_CODE = re.compile(r"\((crm_shared|\w+_service)/")


@dataclass(frozen=True)
class StackSummary:
    samples: int
    parts: list[tuple[str, int]]
    ours: list[tuple[str, int]]  # our functions, inclusive samples
    own: list[tuple[str, int]]  # any function, own (self) samples


def summarise_stacks(path: Path, top: int = 12) -> StackSummary:
    """Read py-spy's collapsed stacks; count named parts, our functions, and self time."""
    parts: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            frames = stack.split(";")
            for name, markers in PARTS:
                if any(marker in stack for marker in markers):
                    parts[name] += count
            # Inclusive: each of our functions once per sample, however deep it recurses.
            for function in {_short(f) for f in frames if _OUR_CODE.search(f)}:
                ours[function] += count
            own[_short(frames[-1])] += count
    return StackSummary(
        total,
        [(name, parts[name]) for name, _ in PARTS if parts[name]],
        ours.most_common(top),
        own.most_common(top),
    )


def _short(frame: str) -> str:
    """`func (pkg/module.py:123)` -> `func (pkg/module.py)`: one entry per function."""
    return re.sub(r":\d+\)$", ")", frame.strip())


async def enable_statement_statistics(admin_url: str, restart: Callable[[], None]) -> None:
    """Preload pg_stat_statements (ALTER SYSTEM, then `restart()`) and create the extension."""
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        await connection.execute("ALTER SYSTEM SET pg_stat_statements.track = 'top'")
    finally:
        await connection.close()
    await asyncio.to_thread(restart)
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await connection.close()


async def reset_statements(admin_url: str) -> None:
    """Forget the statistics gathered so far (the start of a measured phase)."""
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute("SELECT pg_stat_statements_reset()")
        databases = await connection.fetch(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'"
        )
    finally:
        await connection.close()
    await reset_table_statistics(admin_url, [r[0] for r in databases])


@dataclass(frozen=True)
class Statement:
    database: str
    calls: int
    total_ms: float
    rows: int
    query: str
    wal_bytes: int = 0


async def read_statements(admin_url: str) -> list[Statement]:
    """Every statement since the last reset, by total execution time."""
    connection = await asyncpg.connect(admin_url)
    try:
        records = await connection.fetch(
            "SELECT d.datname, s.calls, s.total_exec_time, s.rows, s.query, s.wal_bytes "
            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname <> 'postgres' ORDER BY s.total_exec_time DESC"
        )
    finally:
        await connection.close()
    return [
        Statement(r[0], r[1], r[2], r[3], " ".join(r[4].split()), int(r[5] or 0)) for r in records
    ]


async def reset_table_statistics(admin_url: str, databases: list[str]) -> None:
    """Zero each database's table and index counters (the start of a measured phase)."""
    for database in databases:
        url = make_url(admin_url).set(database=database).render_as_string(False)
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("SELECT pg_stat_reset()")
        finally:
            await connection.close()


async def table_statistics(admin_url: str, databases: list[str]) -> list[str]:
    """Per database: writes and HOT updates per table, and scans per index, since the reset."""
    lines: list[str] = []
    for database in databases:
        url = make_url(admin_url).set(database=database).render_as_string(False)
        connection = await asyncpg.connect(url)
        try:
            tables = await connection.fetch(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, seq_scan,"
                " idx_scan FROM pg_stat_user_tables"
                " WHERE n_tup_ins + n_tup_upd + n_tup_del > 0 OR seq_scan + idx_scan > 0"
                " ORDER BY n_tup_ins + n_tup_upd + n_tup_del DESC"
            )
            indexes = await connection.fetch(
                "SELECT i.relname, i.indexrelname, i.idx_scan, i.idx_tup_read"
                " FROM pg_stat_user_indexes i JOIN pg_stat_user_tables t USING (relid)"
                " WHERE t.n_tup_ins + t.n_tup_upd + t.n_tup_del > 0"
                " ORDER BY i.relname, i.indexrelname"
            )
        finally:
            await connection.close()
        lines.append(f"{database}: table ins/upd/hot/del seq_scan idx_scan")
        lines += [
            f"  {r[0]:32} {r[1]:8} {r[2]:8} {r[3]:8} {r[4]:8} {r[5] or 0:8} {r[6] or 0:8}"
            for r in tables
        ]
        lines.append(f"{database}: indexes on written tables (scans, tuples read)")
        lines += [f"  {r[0]:32} {r[1]:48} {r[2]:8} {r[3]:10}" for r in indexes]
    return lines


_PLAN_NODES = re.compile(r"(Scan|Conflict Arbiter|Index Cond|Filter)")


async def plan_of(admin_url: str, statement: Statement) -> str:
    """The statement's generic plan in one line: its scans, arbiter indexes and conditions.

    The text is pg_stat_statements', with its $n placeholders: prepared and explained as a
    generic plan, it shows whether a hot statement reads through an index. Only planned, never
    run: EXPLAIN without ANALYZE executes nothing.
    """
    url = make_url(admin_url).set(database=statement.database).render_as_string(False)
    try:
        connection = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as error:
        return f"(no plan: {error})"
    try:
        # asyncpg would bind the $n itself (and the planner would then see NULLs): prepare the
        # text in SQL instead and explain its generic plan, executed with NULLs.
        await connection.execute("SET plan_cache_mode = force_generic_plan")
        await connection.execute(f"PREPARE hot AS {statement.query}")
        count = await connection.fetchval(
            "SELECT cardinality(parameter_types) FROM pg_prepared_statements WHERE name = 'hot'"
        )
        nulls = ", ".join(["NULL"] * count)
        rows = await connection.fetch(
            f"EXPLAIN (COSTS OFF) EXECUTE hot{f'({nulls})' if count else ''}"
        )
    except asyncpg.PostgresError as error:
        return f"(no plan: {type(error).__name__})"
    finally:
        await connection.close()
    steps = [row[0].strip().lstrip("-> ") for row in rows if _PLAN_NODES.search(row[0])]
    return "; ".join(steps) or rows[0][0].strip()


class PhaseProfiler:
    """py-spy on every service and pg_stat_statements, around each measured phase."""

    def __init__(
        self, directory: Path, services: dict[str, int], admin_url: str, postmaster: int
    ) -> None:
        self.directory = directory
        self.services = services
        self.admin_url = admin_url
        self.postmaster = postmaster
        self.reports: list[str] = []
        self._postgres_cpu = PostgresCpu()

    @contextlib.contextmanager
    def recording(self, phase: str) -> Iterator[None]:
        """Sample every service while the block runs (py-spy writes on exit)."""
        slug = re.sub(r"[^a-z0-9]+", "-", phase.lower()).strip("-")
        paths = {name: self.directory / f"{slug}-{name}.txt" for name in self.services}
        with contextlib.ExitStack() as stack:
            for name, pid in self.services.items():
                stack.enter_context(py_spy(pid, paths[name]))
            self._postgres_cpu = stack.enter_context(postgres_cpu(self.postmaster))
            yield
        self._paths = paths

    async def report(self, phase: str, orders: int) -> str:
        """The phase's stack summaries and statements (call after `recording` and the phase)."""
        lines = [f"### profile: {phase} ({orders:,} orders)", ""]
        for name, path in self._paths.items():
            summary = summarise_stacks(path)
            lines.append(f"{name}: {summary.samples:,} samples ({path.name})")
            if not summary.samples:
                continue
            share = summary.samples
            lines += [f"  {n / share:6.1%}  {part}" for part, n in summary.parts]
            lines.append("  our code, inclusive:")
            lines += [f"    {n / share:6.1%}  {fn}" for fn, n in summary.ours]
            lines.append("  self:")
            lines += [f"    {n / share:6.1%}  {fn}" for fn, n in summary.own]
        server = self._postgres_cpu
        lines.append(
            f"PostgreSQL CPU by process: {server.total * 1000 / max(orders, 1):.3f} ms per order"
        )
        lines += [
            f"  {seconds * 1000 / max(orders, 1):7.3f} ms  {seconds / (server.total or 1):6.1%}"
            f"  {kind}"
            for kind, seconds in server.by_kind.items()
        ]
        statements = await read_statements(self.admin_url)
        total = sum(s.total_ms for s in statements) or 1.0
        lines += [
            "",
            f"PostgreSQL: {len(statements)} statements, {total:,.0f} ms executing, "
            f"{sum(s.calls for s in statements) / max(orders, 1):,.1f} calls per order; top 15:",
        ]
        lines.append(
            "   share  total ms   calls/order  rows/call  WAL B/order  db            query"
        )
        for s in statements[:15]:
            lines.append(
                f"  {s.total_ms / total:6.1%} {s.total_ms:9,.0f} {s.calls / max(orders, 1):11.2f}"
                f" {s.rows / max(s.calls, 1):10.1f} {s.wal_bytes / max(orders, 1):11,.0f}"
                f"  {s.database:12}  {s.query[:150]}"
            )
            lines.append(f"{'':60}plan: {await plan_of(self.admin_url, s)}")
        by_database: collections.defaultdict[str, float] = collections.defaultdict(float)
        wal_by_database: collections.Counter[str] = collections.Counter()
        for s in statements:
            by_database[s.database] += s.total_ms
            wal_by_database[s.database] += s.wal_bytes
        lines.append("per database: ms executing per order, WAL bytes per order")
        per_order = max(orders, 1)
        lines += [
            f"  {db:14} {ms / per_order:7.3f} ms {wal_by_database[db] / per_order:9,.0f} B"
            for db, ms in sorted(by_database.items(), key=lambda item: -item[1])
        ]
        slug = re.sub(r"[^a-z0-9]+", "-", phase.lower()).strip("-")
        (self.directory / f"{slug}-statements.txt").write_text(
            "\n".join(
                f"{s.total_ms:10.1f} ms {s.calls:8} calls {s.rows:9} rows {s.wal_bytes:11} WAL B"
                f"  {s.database:12}  {s.query}"
                for s in statements
            )
            + "\n"
        )
        # A generic plan scanning a table and comparing each row with an array (`= ANY($1)`)
        # costs rows x values: listed for every statement run at least ten times.
        scans = []
        for s in statements:
            if s.calls >= 10 and s.query.lstrip().upper().startswith(("SELECT", "WITH")):
                plan = await plan_of(self.admin_url, s)
                if "Seq Scan" in plan and "ANY" in plan:
                    scans.append(f"  {s.database:12} {s.total_ms:9,.0f} ms  {s.query[:110]}")
                    scans.append(f"{'':30}plan: {plan}")
        lines.append(f"sequential scans filtered by an array, generic plan: {len(scans) // 2}")
        lines += scans
        databases = sorted(by_database)
        lines += await table_statistics(self.admin_url, databases)
        text = "\n".join(lines)
        self.reports.append(text)
        (self.directory / "profile.txt").write_text("\n\n".join(self.reports) + "\n")
        return text
