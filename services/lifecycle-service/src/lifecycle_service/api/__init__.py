"""lifecycle-service's HTTP edge: the routers, their request and response bodies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from crm_shared import settings_dependency
from lifecycle_service.settings import LifecycleSettings

SettingsDep = Annotated[LifecycleSettings, Depends(settings_dependency(LifecycleSettings))]
"""The settings the app was built with, for a route that reads them."""
