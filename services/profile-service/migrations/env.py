"""Alembic environment of profile-service: its models, its settings' database URL."""

from crm_shared.migrations import run_env
from profile_service.db.models import Base
from profile_service.settings import ProfileSettings

run_env(Base.metadata, ProfileSettings().database_url)
