"""scoring-service: the factory that wires settings, database, routers, consumer and schedules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from crm_contracts import Topic
from crm_shared import ScheduledJob, ServiceRuntime, Subscription, create_service_app, utc_now
from scoring_service.api import routes
from scoring_service.db.models import PLUMBING
from scoring_service.events.handlers import SCORING_TOPICS, ledger_batch
from scoring_service.settings import ScoringSettings
from scoring_service.workflows import scoring
from scoring_service.workflows.purchase_summaries import refresh_between_fits

DESCRIPTION = """
Customer value scores from the order stream: RFM scores and segments, historic and predicted
lifetime value (BG/NBD + Gamma-Gamma, fitted here by maximum likelihood), P(alive), churn
risk, a health index with its reasons, value tiers and grades, and K-means behavioural
segments. Publishes `score.updated` and `segment.changed` on `crm.scores`.
"""


def create_app(settings: ScoringSettings | None = None) -> FastAPI:
    """Build the app; nothing starts until the lifespan runs."""
    settings = settings or ScoringSettings()
    # Customers a batch changed are re-scored right after it commits, not a tick later.
    rescore_now = asyncio.Event()

    async def refit(runtime: ServiceRuntime) -> None:
        await scoring.scheduled_refit(runtime, settings, utc_now)

    async def drain(runtime: ServiceRuntime) -> None:
        await scoring.drain_pending_rescores(runtime, settings)

    async def rescore_all(runtime: ServiceRuntime) -> None:
        await scoring.scheduled_rescore(runtime, settings, utc_now)

    async def refresh_summaries(runtime: ServiceRuntime) -> None:
        await refresh_between_fits(runtime, scoring.FIT_JOB)

    @asynccontextmanager
    async def first_fit(_app: FastAPI, runtime: ServiceRuntime) -> AsyncIterator[None]:
        if settings.refit_interval_seconds > 0:
            fit = scoring.fit_once_orders_arrive(
                runtime,
                settings,
                utc_now,
                every_seconds=settings.first_fit_retry_seconds,
                max_seconds=settings.first_fit_retry_max_seconds,
            )
            runtime.background(asyncio.create_task(fit))
        yield

    return create_service_app(
        settings=settings,
        description=DESCRIPTION,
        plumbing=PLUMBING,
        produces=[Topic.SCORES],
        subscriptions=[
            Subscription("ledger", SCORING_TOPICS, ledger_batch(), after_batch=rescore_now.set)
        ],
        jobs=[
            ScheduledJob("refit", settings.refit_interval_seconds, refit),
            ScheduledJob(
                "rescore-pending",
                settings.pending_rescore_interval_seconds,
                drain,
                wake=rescore_now,
            ),
            ScheduledJob("rescore", settings.rescore_interval_seconds, rescore_all),
            ScheduledJob(
                "refresh-summaries", settings.summary_refresh_interval_seconds, refresh_summaries
            ),
        ],
        on_start=first_fit,
        routers=[routes.router],
    )
