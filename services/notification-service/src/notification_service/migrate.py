"""``python -m notification_service.migrate``: bring the database to the newest schema."""

from __future__ import annotations

from pathlib import Path

from crm_shared import migrations

SERVICE_DIR = Path(__file__).resolve().parents[2]


def upgrade(database_url: str | None = None) -> None:
    """Apply every migration not yet applied."""
    migrations.upgrade(SERVICE_DIR, database_url)


if __name__ == "__main__":
    upgrade()
