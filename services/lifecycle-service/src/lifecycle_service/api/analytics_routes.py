"""``/v1/analytics``: stage counts, transitions, cohorts, rates and warning outcomes."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/analytics", tags=["analytics"])
