"""profile-service's HTTP edge: the routers, their request and response bodies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from crm_shared import settings_dependency
from profile_service.settings import ProfileSettings

SettingsDep = Annotated[ProfileSettings, Depends(settings_dependency(ProfileSettings))]
"""The settings the app was built with, for a route that reads them."""
