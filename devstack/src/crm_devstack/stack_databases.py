"""The stack's databases: SQLite files in the data folder, or one embedded PostgreSQL server."""

from __future__ import annotations

import logging
from pathlib import Path

from crm_devstack.databases import DatabaseStartError, StackPostgres, sqlite_url
from crm_devstack.services import ServiceSpec
from crm_devstack.stack_errors import StackError

_logger = logging.getLogger("crm_devstack")

_ON_SQLITE = "this stack runs on SQLite; start it with postgres=True"


class StackDatabases:
    """Where each service of one stack keeps its data, and the PostgreSQL server's outages."""

    def __init__(self, *, data_dir: Path, postgres: bool) -> None:
        """Prepare; with `postgres` nothing runs until `start()`, without it nothing ever does."""
        self._data_dir = data_dir
        self._postgres = StackPostgres() if postgres else None

    @property
    def admin_url(self) -> str | None:
        """The PostgreSQL server's admin URL (for ``psql``); None on SQLite or when stopped."""
        if self._postgres is None or not self._postgres.is_running:
            return None
        return self._postgres.admin_url

    def start(self) -> None:
        """Start the PostgreSQL server (nothing to do on SQLite)."""
        if self._postgres is None:
            return
        _logger.info("starting the embedded PostgreSQL server")
        try:
            self._postgres.start()
        except DatabaseStartError as error:
            raise StackError(str(error)) from error

    def url_for(self, spec: ServiceSpec) -> str:
        """The database URL of `spec`: its SQLite file, or a fresh PostgreSQL database."""
        if self._postgres is None:
            return sqlite_url(self._data_dir, spec)
        try:
            return self._postgres.create_database(spec)
        except Exception as error:  # asyncpg and OS errors alike: say which service's database
            raise StackError(
                f"{spec.name}: could not create its PostgreSQL database: {error}"
            ) from error

    def pause(self) -> None:
        """Stop the PostgreSQL server (an outage), keeping its data for `resume`."""
        if self._postgres is None:
            raise StackError(_ON_SQLITE)
        _logger.info("stopping the embedded PostgreSQL server")
        self._postgres.pause()

    def resume(self) -> None:
        """Start the PostgreSQL server stopped by `pause` again, at the same address."""
        if self._postgres is None:
            raise StackError(_ON_SQLITE)
        _logger.info("starting the embedded PostgreSQL server again")
        self._postgres.resume()

    def stop(self) -> None:
        """Stop the PostgreSQL server and delete its files (nothing to do on SQLite)."""
        if self._postgres is not None:
            self._postgres.stop()
