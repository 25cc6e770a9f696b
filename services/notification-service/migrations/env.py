"""Alembic environment of notification-service: its models, its settings' database URL."""

from crm_shared.migrations import run_env
from notification_service.db.models import Base
from notification_service.settings import NotificationSettings

run_env(Base.metadata, NotificationSettings().database_url)
