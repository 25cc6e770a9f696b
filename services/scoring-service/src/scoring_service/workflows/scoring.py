"""Fitting and re-scoring: from the ledger to stored scores and published changes."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_shared import ServiceRuntime, hold_job_lock, new_id
from crm_shared.errors import Conflict, UnprocessableContent
from scoring_service.db.models import PROFILING_DECISIONS, ModelVersion, Score
from scoring_service.domain.models import FittedModels, fit_models
from scoring_service.domain.predictions import ScoringPolicy
from scoring_service.domain.purchase_history import histories_as_of
from scoring_service.domain.scoring import score_histories
from scoring_service.domain.tiers import ValueScorecard
from scoring_service.settings import ScoringSettings
from scoring_service.workflows.feedback_loading import feedback_inputs
from scoring_service.workflows.ledger import purchase_day
from scoring_service.workflows.ledger_loading import LoadedLedger, engagement_counts, load_ledger
from scoring_service.workflows.model_store import active, active_models
from scoring_service.workflows.pending_rescores import (
    claim_rescores,
    clear_rescores_until,
    release_rescores,
)
from scoring_service.workflows.score_publishing import store_scores

FIT_JOB = "scoring-fit"

_logger = logging.getLogger("crm.scoring.fits")


class NothingToFit(UnprocessableContent):
    """No customer had bought anything by the as-of time."""


def policy_of(settings: ScoringSettings) -> ScoringPolicy:
    """The scoring choices the settings make."""
    return ScoringPolicy(
        churn_horizon_days=settings.churn_horizon_days,
        clv_months=settings.clv_months,
        monthly_discount_rate=settings.monthly_discount_rate,
        scorecard=ValueScorecard(
            current_weight=settings.current_value_weight,
            potential_weight=1.0 - settings.current_value_weight,
        ),
    )


def models_of(version: ModelVersion) -> FittedModels:
    """The fitted models a stored version holds."""
    return FittedModels.from_stored(
        version.bg_nbd, version.gamma_gamma, version.thresholds, version.churn_calibration
    )


async def fit_and_rescore(
    runtime: ServiceRuntime, settings: ScoringSettings, *, as_of: datetime
) -> ModelVersion:
    """Fit every model on purchases up to `as_of`, store the version, re-score the base."""
    started = time.perf_counter()
    policy = policy_of(settings)
    async with runtime.sessions() as session, session.begin():
        if not await hold_job_lock(session, FIT_JOB):
            raise Conflict("Another replica is fitting the models right now; try again shortly.")
        loaded = await load_ledger(session)
        histories = histories_as_of(loaded.ledger, purchase_day(as_of))
        if len(histories) == 0:
            raise NothingToFit(f"No purchases known up to {as_of.isoformat()}: nothing to fit yet.")
        previous = await active(session)
        # Fitting is CPU work of seconds: keep the event loop answering meanwhile.
        fit = await asyncio.to_thread(
            functools.partial(
                fit_models,
                histories,
                policy,
                previous=models_of(previous) if previous else None,
                ledger=loaded.ledger,
            )
        )
        version = ModelVersion(
            version=new_id(),
            created_at=datetime.now(as_of.tzinfo),
            as_of=as_of,
            customers=len(histories),
            fit_seconds=round(time.perf_counter() - started, 3),
            bg_nbd=fit.models.bg_nbd_dict(),
            gamma_gamma=fit.models.gamma_gamma_dict(),
            thresholds=fit.models.thresholds_dict(),
            churn_calibration=fit.models.churn_calibration_dict(),
            notes=fit.notes,
        )
        session.add(version)
        await session.flush()
        await _rescore(session, loaded, fit.models, version.version, as_of, policy, settings)
        await clear_rescores_until(session, as_of)
    runtime.wake_relay()
    return version


async def rescore_all(
    runtime: ServiceRuntime, settings: ScoringSettings, *, as_of: datetime
) -> int:
    """Re-score every customer with the active models (scores decay with silence)."""
    async with runtime.sessions() as session, session.begin():
        if not await hold_job_lock(session, FIT_JOB):
            return 0
        version = await active(session)
        if version is None:
            return 0
        loaded = await load_ledger(session)
        changed = await _rescore(
            session,
            loaded,
            models_of(version),
            version.version,
            as_of,
            policy_of(settings),
            settings,
        )
    runtime.wake_relay()
    return changed


async def rescore_pending(runtime: ServiceRuntime, settings: ScoringSettings) -> int:
    """Score up to one batch of queued customers; return how many were taken off the queue."""
    async with runtime.sessions() as session, session.begin():
        if await active_models(session) is None:
            return 0  # queued customers wait for the first fit, which scores everyone
        claimed = await claim_rescores(session, settings.rescore_batch_size)
        if not claimed:
            return 0
        await rescore_customers(session, claimed, settings=settings)
        await release_rescores(session, claimed)
    runtime.wake_relay()
    return len(claimed)


async def drain_pending_rescores(runtime: ServiceRuntime, settings: ScoringSettings) -> None:
    """Score queued customers until the queue is empty (one tick of the re-score loop)."""
    while await rescore_pending(runtime, settings) >= settings.rescore_batch_size:
        pass


async def fit_once_orders_arrive(
    runtime: ServiceRuntime,
    settings: ScoringSettings,
    clock: Callable[[], datetime],
    *,
    every_seconds: float,
    max_seconds: float | None = None,
) -> None:
    """Until a model with BG/NBD parameters exists, try a fit every `every_seconds` (a new base
    gets scores within a minute of its first orders, not a refit interval later).

    A fit on a base still too small for BG/NBD stores a version without it; the next tries
    then back off, doubling the wait up to `max_seconds`, until the base has grown enough.
    """
    delay = every_seconds
    cap = max(every_seconds, max_seconds if max_seconds is not None else every_seconds)
    while True:
        try:
            if await has_purchase_model(runtime):
                return
            await asyncio.sleep(delay)
            await scheduled_refit(runtime, settings, clock)
            if await has_models(runtime) and not await has_purchase_model(runtime):
                delay = min(cap, delay * 2)
                _logger.info("first models lack BG/NBD (base too small); next try in %ss", delay)
        except Exception:
            # A database blip must not end the wait for a first model for the process's life.
            _logger.warning("first model fit failed; trying again", exc_info=True)
            await asyncio.sleep(delay)


async def has_models(runtime: ServiceRuntime) -> bool:
    """Whether any model version was fitted yet."""
    async with runtime.sessions() as session:
        return await active(session) is not None


async def has_purchase_model(runtime: ServiceRuntime) -> bool:
    """Whether the active version has BG/NBD parameters (so scores carry predictions)."""
    async with runtime.sessions() as session:
        version = await active(session)
        return version is not None and bool(version.bg_nbd)


async def scheduled_refit(
    runtime: ServiceRuntime, settings: ScoringSettings, clock: Callable[[], datetime]
) -> None:
    """The periodic refit; skipped quietly when another replica is at it."""
    try:
        await fit_and_rescore(runtime, settings, as_of=clock())
    except (Conflict, NothingToFit):
        return  # another replica is at it, or there is nothing to learn from yet


async def scheduled_rescore(
    runtime: ServiceRuntime, settings: ScoringSettings, clock: Callable[[], datetime]
) -> None:
    """The periodic re-score of the whole base."""
    await rescore_all(runtime, settings, as_of=clock())


async def rescore_customers(
    session: AsyncSession, latest_event: dict[str, datetime], *, settings: ScoringSettings
) -> None:
    """Re-score the customers a batch touched, as of the batch's latest event time.

    The stream's own time is the clock here (a replay of 1997 scores as of 1997); one
    as-of per batch keeps it one vectorised pass. Runs inside the batch's transaction;
    before the first fit there is nothing to score with.
    """
    found = await active_models(session)
    if found is None or not latest_event:
        return
    version, models = found
    customer_ids = sorted(latest_event)
    loaded = await load_ledger(session, customer_ids)
    await _rescore(
        session,
        loaded,
        models,
        version,
        max(latest_event.values()),
        policy_of(settings),
        settings,
        only=customer_ids,
    )


async def _rescore(
    session: AsyncSession,
    loaded: LoadedLedger,
    models: FittedModels,
    version: str,
    as_of: datetime,
    policy: ScoringPolicy,
    settings: ScoringSettings,
    *,
    only: Sequence[str] | None = None,
) -> int:
    histories = histories_as_of(loaded.ledger, purchase_day(as_of))
    customer_ids = [loaded.customer_ids[i] for i in histories.customer]
    engagement = await engagement_counts(session, customer_ids, as_of)
    feedback = await feedback_inputs(session, customer_ids, as_of)
    table = await asyncio.to_thread(
        score_histories, histories, models, policy, engagement, feedback
    )
    if only is not None:
        # Customers whose every order was cancelled or refunded, or who object to profiling
        # (the ledger leaves them out), have no scores any more.
        gone = set(only) - set(customer_ids)
        if gone:
            await session.execute(delete(Score).where(Score.customer_id.in_(gone)))
    else:
        # A score stored by a fit that read the ledger before an objection committed.
        objecting = PROFILING_DECISIONS.c
        await session.execute(
            delete(Score).where(
                Score.customer_id.in_(
                    select(objecting.customer_id).where(objecting.objected.is_(True))
                )
            )
        )
    return await store_scores(
        session,
        table,
        customer_ids,
        models,
        version=version,
        as_of=as_of,
        currency=settings.currency,
        tolerance=settings.score_change_tolerance,
    )
