"""The services the development stack knows about, and where the repository is."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

# (name, package, env prefix, development port). Every planned service has its line and port
# already; it joins the stack as soon as its app exists under services/.
_CATALOGUE: tuple[tuple[str, str, str, int], ...] = (
    ("profile-service", "profile_service", "PROFILE_", 8001),
    ("scoring-service", "scoring_service", "SCORING_", 8002),
    ("lifecycle-service", "lifecycle_service", "LIFECYCLE_", 8003),
    ("notification-service", "notification_service", "NOTIFICATION_", 8004),
)


class RepositoryNotFound(RuntimeError):
    """crm_devstack runs from a checkout; no parent folder holds ``services/``."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one service: its package, settings prefix, development port and folder."""

    name: str
    package: str
    env_prefix: str
    port: int
    directory: Path

    @property
    def migrate_module(self) -> str:
        """The module that upgrades the service's database to the latest migration."""
        return f"{self.package}.migrate"

    @property
    def app_factory(self) -> str:
        """The ASGI app factory, as uvicorn's ``--factory`` expects it."""
        return f"{self.package}.app:create_app"

    @property
    def alembic_ini(self) -> Path:
        """The service's Alembic configuration."""
        return self.directory / "alembic.ini"


@functools.cache
def repo_root() -> Path:
    """The checkout's root: the nearest folder above this package (or the cwd) with ``services/``.

    Walking up from ``__file__`` works for the editable install ``make`` does; the working
    directory is the fallback for an installed wheel run from inside a checkout.
    """
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "services").is_dir():
                return folder
    raise RepositoryNotFound(
        "crm_devstack needs the repository checkout: no folder above "
        f"{Path(__file__).resolve()} or {Path.cwd()} contains services/."
    )


def discover_services(root: Path | None = None) -> tuple[ServiceSpec, ...]:
    """The catalogued services that have an app under ``<root>/services``, in port order.

    A service joins once its app factory exists: a folder holding only domain code so far
    (a service being built) is not started.
    """
    services_dir = (root or repo_root()) / "services"
    specs = (
        ServiceSpec(name, package, prefix, port, services_dir / name)
        for name, package, prefix, port in _CATALOGUE
    )
    return tuple(
        spec for spec in specs if (spec.directory / "src" / spec.package / "app.py").is_file()
    )


SERVICES: tuple[ServiceSpec, ...] = discover_services()

CONSOLE_PORT = 8000


def console_spec(root: Path | None = None) -> ServiceSpec | None:
    """The operator console (``services/console``, no database), or None where it is absent.

    Not one of `SERVICES`: it consumes no events and owns no data, so the migrations, the
    demo and the fault suite, which walk the services, leave it out.
    """
    directory = (root or repo_root()) / "services" / "console"
    spec = ServiceSpec("console", "crm_console", "CONSOLE_", CONSOLE_PORT, directory)
    return spec if (directory / "src" / spec.package / "app.py").is_file() else None
