"""Prove each service's migrations build its database and match its models (``alembic check``).

Tests build their databases with the same migrations, so a model changed without a
migration would pass every test and fail in production; this check is what catches it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crm_devstack.services import SERVICES, ServiceSpec

STEP_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class MigrationCheckFailure:
    """A service whose migrations failed to apply or do not match its models."""

    service: str
    step: str
    output: str


def check_service_migrations(
    spec: ServiceSpec, *, python: str = sys.executable
) -> MigrationCheckFailure | None:
    """Migrate a fresh SQLite database to head, then run ``alembic check`` against it.

    Returns None when both succeed, else the failing step with the command's output.
    """
    with tempfile.TemporaryDirectory(prefix=f"crm-check-{spec.name}-") as scratch:
        database = Path(scratch) / f"{spec.name}.db"
        env = {
            **os.environ,
            f"{spec.env_prefix}ENVIRONMENT": "test",
            f"{spec.env_prefix}DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            # Migrations touch only the database; keep a stray broker setting out of it.
            f"{spec.env_prefix}KAFKA_ENABLED": "false",
        }
        steps = (
            ("upgrade to head", [python, "-m", spec.migrate_module]),
            ("alembic check", [python, "-m", "alembic", "-c", str(spec.alembic_ini), "check"]),
        )
        for step, command in steps:
            failure = _run_step(spec, step, command, env)
            if failure is not None:
                return failure
    return None


def check_migrations(services: Sequence[ServiceSpec] | None = None) -> list[MigrationCheckFailure]:
    """Check every service (all of them, so one run reports every drift) and list failures."""
    failures = []
    for spec in SERVICES if services is None else services:
        failure = check_service_migrations(spec)
        if failure is not None:
            failures.append(failure)
    return failures


def _run_step(
    spec: ServiceSpec, step: str, command: list[str], env: dict[str, str]
) -> MigrationCheckFailure | None:
    try:
        # cwd is the service folder: Alembic resolves a relative script_location from it.
        result = subprocess.run(
            command,
            cwd=spec.directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return MigrationCheckFailure(
            spec.name, step, f"did not finish within {STEP_TIMEOUT_SECONDS:.0f} s"
        )
    if result.returncode == 0:
        return None
    output = "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())
    return MigrationCheckFailure(spec.name, step, output or f"exit code {result.returncode}")
