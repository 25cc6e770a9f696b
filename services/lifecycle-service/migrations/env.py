"""Alembic environment of lifecycle-service: its models, its settings' database URL."""

from crm_shared.migrations import run_env
from lifecycle_service.db.models import Base
from lifecycle_service.settings import LifecycleSettings

run_env(Base.metadata, LifecycleSettings().database_url)
