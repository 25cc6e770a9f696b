"""scoring-service as a benchmark process: its settings, the ones inherited from the shell, and
its migration.
"""

from __future__ import annotations

import os
from pathlib import Path

from lib.orders import (
    REBALANCE_TIMEOUT_MS,
    SESSION_TIMEOUT_MS,
)
from lib.processes import (
    inherited_settings,
    run_migration,
)

SCORING_APP = "scoring_service.app:create_app"


OUR_SETTINGS = {
    "SCORING_DATABASE_URL",
    "SCORING_KAFKA_BOOTSTRAP_SERVERS",
    "SCORING_API_KEYS",
    "SCORING_ENVIRONMENT",
    "SCORING_REFIT_INTERVAL_SECONDS",
    "SCORING_RESCORE_INTERVAL_SECONDS",
    "SCORING_SUMMARY_REFRESH_INTERVAL_SECONDS",
    "SCORING_LOG_LEVEL",
    "SCORING_KAFKA_SESSION_TIMEOUT_MS",
    "SCORING_KAFKA_REBALANCE_TIMEOUT_MS",
}


def scoring_env(database_url: str, bootstrap: str, api_keys_json: str) -> dict[str, str]:
    """The environment of the scoring-service process and of its migration."""
    env = dict(os.environ)
    env.update(
        {
            "SCORING_DATABASE_URL": database_url,
            "SCORING_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SCORING_API_KEYS": api_keys_json,
            "SCORING_ENVIRONMENT": "test",
            "SCORING_REFIT_INTERVAL_SECONDS": "0",
            "SCORING_RESCORE_INTERVAL_SECONDS": "0",
            # Off: a fit then refreshes every summary touched since the last (the worst case).
            "SCORING_SUMMARY_REFRESH_INTERVAL_SECONDS": "0",
            "SCORING_LOG_LEVEL": "WARNING",
            "SCORING_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "SCORING_KAFKA_REBALANCE_TIMEOUT_MS": str(REBALANCE_TIMEOUT_MS),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def inherited_scoring_settings() -> list[str]:
    """``SCORING_*`` variables set by the caller that the service inherits unchanged."""
    return inherited_settings("SCORING_", OUR_SETTINGS)


def migrate(env: dict[str, str], log_path: Path) -> None:
    """``python -m scoring_service.migrate`` with the service's environment."""
    run_migration("scoring_service", env, log_path)
