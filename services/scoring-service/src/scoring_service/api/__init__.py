"""scoring-service's HTTP edge: the routers, their request and response bodies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from crm_shared import settings_dependency
from scoring_service.settings import ScoringSettings

SettingsDep = Annotated[ScoringSettings, Depends(settings_dependency(ScoringSettings))]
"""The settings the app was built with, for a route that reads them."""
