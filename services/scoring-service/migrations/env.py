"""Alembic environment of scoring-service: its models, its settings' database URL."""

from crm_shared.migrations import run_env
from scoring_service.db.models import Base
from scoring_service.settings import ScoringSettings

run_env(Base.metadata, ScoringSettings().database_url)
