"""Fitting every model a score needs, with fall-backs, into one storable set."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from scoring_service.domain.bg_nbd import BgNbdParameters, fit_bg_nbd_with_fallback
from scoring_service.domain.churn_calibration import (
    CALIBRATION_SAMPLE,
    CalibrationNotFitted,
    ChurnCalibration,
    fit_churn_calibration,
)
from scoring_service.domain.gamma_gamma import (
    GammaGammaParameters,
    can_enter_spend_model,
    fit_gamma_gamma_with_fallback,
)
from scoring_service.domain.likelihood_fitting import ModelFitError
from scoring_service.domain.predictions import ScoringPolicy, predicted_clv
from scoring_service.domain.purchase_history import CustomerHistories, PurchaseLedger
from scoring_service.domain.rfm import RfmThresholds, fit_rfm_thresholds
from scoring_service.domain.segments import BehaviouralSegmentation, fit_behavioural_segments
from scoring_service.domain.tiers import ValueThresholds, fit_value_thresholds

MIN_CUSTOMERS_FOR_MODELS = 20
MIN_REPEAT_BUYERS_FOR_SPEND_MODEL = 10


@dataclass(frozen=True)
class FittedModels:
    """Everything scores are computed with; stored as one model version."""

    bg_nbd: BgNbdParameters | None
    gamma_gamma: GammaGammaParameters | None
    rfm: RfmThresholds
    value: ValueThresholds
    segmentation: BehaviouralSegmentation
    bg_nbd_log_likelihood: float | None = None
    gamma_gamma_log_likelihood: float | None = None
    churn_calibration: ChurnCalibration | None = None
    # The stored form of the calibration, with its figures (kept as fitted, for the API).
    churn_calibration_report: dict[str, Any] | None = None

    def thresholds_dict(self) -> dict[str, Any]:
        """RFM, value and segmentation thresholds as JSON."""
        return {
            "rfm": self.rfm.to_dict(),
            "value": self.value.to_dict(),
            "segmentation": self.segmentation.to_dict(),
        }

    def bg_nbd_dict(self) -> dict[str, Any]:
        """BG/NBD parameters and log-likelihood as JSON (empty when no model)."""
        if self.bg_nbd is None:
            return {}
        return {**asdict(self.bg_nbd), "log_likelihood": self.bg_nbd_log_likelihood}

    def gamma_gamma_dict(self) -> dict[str, Any] | None:
        """Gamma-Gamma parameters and log-likelihood as JSON."""
        if self.gamma_gamma is None:
            return None
        return {**asdict(self.gamma_gamma), "log_likelihood": self.gamma_gamma_log_likelihood}

    def churn_calibration_dict(self) -> dict[str, Any] | None:
        """The churn calibration's curves and figures as JSON, `used` saying whether scores
        apply it (None: nothing could be fitted, the notes say why)."""
        return self.churn_calibration_report

    @classmethod
    def from_stored(
        cls,
        bg_nbd: dict[str, Any],
        gamma_gamma: dict[str, Any] | None,
        thresholds: dict[str, Any],
        churn_calibration: dict[str, Any] | None = None,
    ) -> FittedModels:
        """Rebuild from what the `*_dict` methods gave."""
        return cls(
            bg_nbd=BgNbdParameters(**{k: bg_nbd[k] for k in ("r", "alpha", "a", "b")})
            if bg_nbd
            else None,
            gamma_gamma=GammaGammaParameters(**{k: gamma_gamma[k] for k in ("p", "q", "v")})
            if gamma_gamma
            else None,
            rfm=RfmThresholds.from_dict(thresholds["rfm"]),
            value=ValueThresholds.from_dict(thresholds["value"]),
            segmentation=BehaviouralSegmentation.from_dict(thresholds["segmentation"]),
            bg_nbd_log_likelihood=bg_nbd.get("log_likelihood") if bg_nbd else None,
            gamma_gamma_log_likelihood=gamma_gamma.get("log_likelihood") if gamma_gamma else None,
            churn_calibration=ChurnCalibration.from_dict(churn_calibration)
            if churn_calibration and churn_calibration.get("used", True)
            else None,
            churn_calibration_report=churn_calibration,
        )


@dataclass(frozen=True)
class ModelFit:
    """A fitted set and what happened on the way (fall-backs, kept parameters)."""

    models: FittedModels
    notes: list[str]


def fit_models(
    histories: CustomerHistories,
    policy: ScoringPolicy,
    *,
    previous: FittedModels | None,
    ledger: PurchaseLedger | None = None,
) -> ModelFit:
    """Fit BG/NBD, Gamma-Gamma, RFM, value and cluster thresholds on the customer base, and
    the churn calibration on a time split of `ledger` (the ledger `histories` came from).

    A model that cannot be fitted falls back to the previous version's parameters (and
    says so); with no previous version, the scores leave its predictions empty.
    """
    # One BLAS thread: the likelihoods' matrix-vector products over hundreds of thousands of
    # rows start OpenBLAS's pool, whose threads spin for cores that a busy host does not have;
    # one thread took half the CPU seconds on a million customers (bench/RESULTS.md, fit1m).
    with threadpool_limits(limits=1):
        return _fit_models(histories, policy, previous=previous, ledger=ledger)


def _fit_models(
    histories: CustomerHistories,
    policy: ScoringPolicy,
    *,
    previous: FittedModels | None,
    ledger: PurchaseLedger | None,
) -> ModelFit:
    notes: list[str] = []
    bg, bg_ll = _fit_purchase_model(histories, previous, notes)
    gg, gg_ll = _fit_spend_model(histories, previous, notes)
    calibration, report = _fit_calibration(histories, ledger, policy, previous, bg, notes)
    clv = predicted_clv(histories, bg, gg, policy)
    monetary = histories.total_spend
    frequency = histories.purchase_days.astype(np.float64)
    return ModelFit(
        FittedModels(
            bg_nbd=bg,
            gamma_gamma=gg,
            rfm=fit_rfm_thresholds(histories.recency_days, frequency, monetary),
            value=fit_value_thresholds(histories.spend_12m, clv, policy.scorecard),
            segmentation=fit_behavioural_segments(histories.recency_days, frequency, monetary),
            bg_nbd_log_likelihood=bg_ll,
            gamma_gamma_log_likelihood=gg_ll,
            churn_calibration=calibration,
            churn_calibration_report=report,
        ),
        notes,
    )


def _fit_calibration(
    histories: CustomerHistories,
    ledger: PurchaseLedger | None,
    policy: ScoringPolicy,
    previous: FittedModels | None,
    bg: BgNbdParameters | None,
    notes: list[str],
) -> tuple[ChurnCalibration | None, dict[str, Any] | None]:
    if ledger is None or bg is None:
        return None, None
    try:
        calibration = fit_churn_calibration(ledger, histories.as_of_day, policy.churn_horizon_days)
    except CalibrationNotFitted as reason:
        if previous is not None and previous.churn_calibration is not None:
            notes.append(f"Churn calibration not refitted ({reason}); kept the previous one")
            return previous.churn_calibration, previous.churn_calibration_report
        notes.append(f"Churn risk published uncalibrated: {reason}")
        return None, None
    if len(histories) > CALIBRATION_SAMPLE:
        notes.append(
            f"Churn calibration learnt from a fixed-seed sample of {CALIBRATION_SAMPLE:,} "
            f"of {len(histories):,} customers (every order of each)"
        )
    before, after = calibration.uncalibrated, calibration.calibrated
    if before is not None and after is not None and after.brier > before.brier:
        # On a small base the curves can fit noise: publish them only where they helped.
        notes.append(
            "Churn risk published uncalibrated: on the time split the calibrated risk scored "
            f"a Brier of {after.brier:.4f} against the model's {before.brier:.4f}"
        )
        return None, {**calibration.to_dict(), "used": False}
    return calibration, {**calibration.to_dict(), "used": True}


def _fit_purchase_model(
    histories: CustomerHistories, previous: FittedModels | None, notes: list[str]
) -> tuple[BgNbdParameters | None, float | None]:
    kept = (previous.bg_nbd, previous.bg_nbd_log_likelihood) if previous else (None, None)
    if len(histories) < MIN_CUSTOMERS_FOR_MODELS:
        notes.append(
            f"BG/NBD not fitted: {len(histories)} customers, need {MIN_CUSTOMERS_FOR_MODELS}"
        )
        return kept
    rows = histories.distinct
    try:
        fit = fit_bg_nbd_with_fallback(rows.x, rows.t_x, rows.T, weights=rows.weights)
    except ModelFitError as error:
        notes.append(f"BG/NBD fit failed, kept the previous parameters: {error}")
        return kept
    if fit.method != "mle":
        notes.append(f"BG/NBD: {fit.message}")
    return fit.params, fit.log_likelihood


def _fit_spend_model(
    histories: CustomerHistories, previous: FittedModels | None, notes: list[str]
) -> tuple[GammaGammaParameters | None, float | None]:
    kept = (previous.gamma_gamma, previous.gamma_gamma_log_likelihood) if previous else (None, None)
    x, zbar = histories.x, histories.repeat_spend_mean
    usable = can_enter_spend_model(x, zbar)
    left_out = int(np.count_nonzero(x > 0)) - int(np.count_nonzero(usable))
    if left_out:
        # One such customer used to fail the whole fit; they are left out, not the model.
        notes.append(
            f"Gamma-Gamma: {left_out} repeat buyers left out of the spend model's fit: their "
            "repeat orders were all free or refunded (mean repeat spend 0), and the model "
            "needs positive amounts. Their predicted CLV values each purchase at the model's "
            "expected spend for a mean repeat spend of 0, p*v/(p*x + q - 1): the population "
            "mean, lowered by each free repeat purchase."
        )
    if int(np.count_nonzero(usable)) < MIN_REPEAT_BUYERS_FOR_SPEND_MODEL:
        notes.append(
            f"Gamma-Gamma not fitted: {int(np.count_nonzero(usable))} repeat buyers with "
            f"positive spend, need {MIN_REPEAT_BUYERS_FOR_SPEND_MODEL}"
        )
        return kept
    try:
        fit = fit_gamma_gamma_with_fallback(x[usable], zbar[usable])
    except ModelFitError as error:
        notes.append(f"Gamma-Gamma fit failed, kept the previous parameters: {error}")
        return kept
    if fit.method != "mle":
        notes.append(f"Gamma-Gamma: {fit.message}")
    return fit.params, fit.log_likelihood
