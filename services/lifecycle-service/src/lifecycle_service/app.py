"""lifecycle-service: the factory that wires settings, database, routers, consumer and sweep."""

from __future__ import annotations

from fastapi import FastAPI

from crm_contracts import Topic
from crm_shared import ScheduledJob, ServiceRuntime, Subscription, create_service_app, utc_now
from lifecycle_service.api import analytics_routes, feedback_routes, routes
from lifecycle_service.db.models import PLUMBING
from lifecycle_service.events.event_batch import LIFECYCLE_TOPICS, apply_events
from lifecycle_service.settings import LifecycleSettings
from lifecycle_service.workflows.sweep import scheduled_sweep

DESCRIPTION = """
Lifecycle stages that move with orders, with scores and with silence: prospect, new, active,
loyal, at_risk, dormant, churned and won_back, with the history of every move and its reason.
Stage rules are data (versioned, validated, with a dry run). Raises churn warnings and keeps
each one open until a purchase saves it or it expires. Publishes `lifecycle.stage_changed` and
`churn.warning` on `crm.lifecycle`; analytics for the people running retention.
"""


def create_app(settings: LifecycleSettings | None = None) -> FastAPI:
    """Build the app; nothing starts until the lifespan runs."""
    settings = settings or LifecycleSettings()

    async def sweep(runtime: ServiceRuntime) -> None:
        await scheduled_sweep(runtime, settings, utc_now)

    return create_service_app(
        settings=settings,
        description=DESCRIPTION,
        plumbing=PLUMBING,
        produces=[Topic.LIFECYCLE],
        subscriptions=[Subscription("stages", LIFECYCLE_TOPICS, apply_events)],
        jobs=[ScheduledJob("sweep", settings.sweep_interval_seconds, sweep)],
        routers=[routes.router, analytics_routes.router, feedback_routes.router],
    )
