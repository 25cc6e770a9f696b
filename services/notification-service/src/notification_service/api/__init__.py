"""notification-service's HTTP edge: the routers, their request and response bodies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from crm_shared import settings_dependency
from notification_service.settings import NotificationSettings

SettingsDep = Annotated[NotificationSettings, Depends(settings_dependency(NotificationSettings))]
"""The settings the app was built with, for a route that reads them."""
