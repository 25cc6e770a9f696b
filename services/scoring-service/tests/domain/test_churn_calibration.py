"""The published churn risk, calibrated on a time split of the stored history, on CDNOW's holdout.

The models and the calibration see only the purchases up to 30 September 1997 (the end of the
calibration period of Fader, Hardie & Lee 2005); who bought in the 39 holdout weeks after it is
what the churn risk for a 39-week horizon is judged against.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from scoring_service.domain.bg_nbd import expected_purchases
from scoring_service.domain.churn_calibration import (
    CALIBRATION_SAMPLE,
    CalibrationNotFitted,
    ChurnCalibration,
    fit_churn_calibration,
    fit_silence_curve,
    sampled_customers,
    split_horizon_days,
    split_horizons,
)
from scoring_service.domain.forecast_quality import forecast_quality
from scoring_service.domain.models import FittedModels, fit_models
from scoring_service.domain.predictions import ScoringPolicy
from scoring_service.domain.purchase_history import PurchaseLedger, histories_as_of
from scoring_service.domain.scoring import score_histories

DATA = Path(__file__).parents[1] / "data"
EPOCH = date(1970, 1, 1)
CALIBRATION_END = (date(1997, 9, 30) - EPOCH).days
HOLDOUT_DAYS = 273  # 39 weeks: 1 October 1997 - 30 June 1998


def cdnow_ledger() -> PurchaseLedger:
    """Every CDNOW purchase, holdout included (fits only ever look up to their as-of day)."""
    customers: dict[str, int] = {}
    rows = []
    for line in (DATA / "CDNOW_sample.txt").read_text().splitlines():
        _master, sample_id, yyyymmdd, _cds, dollars = line.split()
        day = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
        rows.append((customers.setdefault(sample_id, len(customers)), (day - EPOCH).days, dollars))
    customer, day, amount = zip(*rows, strict=True)
    return PurchaseLedger(
        np.array(customer, np.int64), np.array(day, np.int64), np.array(amount, np.float64)
    )


@pytest.fixture(scope="module")
def holdout_forecasts() -> dict[str, object]:
    """Fit as of 1997-09-30 with a 39-week churn horizon; score; note who stayed silent."""
    ledger = cdnow_ledger()
    policy = ScoringPolicy(churn_horizon_days=HOLDOUT_DAYS)
    histories = histories_as_of(ledger, CALIBRATION_END)
    fit = fit_models(histories, policy, previous=None, ledger=ledger)
    table = score_histories(histories, fit.models, policy, np.zeros(len(histories)))
    later = (ledger.day > CALIBRATION_END) & (ledger.day <= CALIBRATION_END + HOLDOUT_DAYS)
    bought = np.zeros(int(ledger.customer.max()) + 1, dtype=bool)
    bought[ledger.customer[later]] = True
    return {
        "fit": fit,
        "published": table.predicted.churn_risk,
        "uncalibrated": table.predicted.churn_risk_uncalibrated,
        "silent": ~bought[histories.customer],
    }


def test_the_published_churn_risk_is_calibrated_on_the_cdnow_holdout(
    holdout_forecasts: dict[str, object],
) -> None:
    silent = holdout_forecasts["silent"]
    before = forecast_quality(holdout_forecasts["uncalibrated"], silent)  # type: ignore[arg-type]
    after = forecast_quality(holdout_forecasts["published"], silent)  # type: ignore[arg-type]
    print(f"holdout: silent {after.observed:.4f}")
    for name, q in (("uncalibrated", before), ("calibrated", after)):
        print(
            f"{name}: mean {q.mean_predicted:.4f} AUC {q.roc_auc:.4f} Brier {q.brier:.4f} "
            f"ECE {q.ece:.4f}"
        )
        for b in q.reliability:
            print(f"  decile {b.decile}: {b.mean_predicted:.3f} predicted, {b.observed:.3f} silent")
    # The figures of issue 13: exp(-E) averaged 0.651 against 71.0 % silent.
    assert round(after.observed, 3) == 0.710
    assert before.mean_predicted == pytest.approx(0.651, abs=0.001)
    assert round(before.brier, 3) == 0.160
    # Even a perfectly calibrated forecast shows an ECE: ~0.021 on 2,357 customers (sd 0.005),
    # so issue 13's goal of 0.02 is met by the true probabilities only about 44 % of the time.
    # The model's exp(-E) is miscalibrated far beyond that noise (0.059, over 7 sd above it).
    assert before.ece > before.ece_if_calibrated + 5 * before.ece_if_calibrated_sd
    # Calibrated (curves chosen on the stored history only): within the noise of a perfectly
    # calibrated forecast (0.026 against 0.021 +- 0.005), the mean within 0.015 of the silent
    # share, Brier better by 0.004, ranking no worse. The goal ECE < 0.02 is not met.
    assert after.ece < after.ece_if_calibrated + 1.5 * after.ece_if_calibrated_sd
    assert after.ece < 0.027
    assert abs(after.mean_predicted - after.observed) < 0.015
    assert after.brier <= before.brier - 0.004
    assert after.roc_auc is not None
    assert before.roc_auc is not None
    assert after.roc_auc >= before.roc_auc


def test_at_the_default_90_day_horizon_the_published_risk_meets_the_ece_goal() -> None:
    # The goal (ECE < 0.02, Brier no worse, AUC kept) at the service's default horizon:
    # the 90 days after 1997-09-30, with the curves pooled from the 90, 68 and 45 days before.
    ledger = cdnow_ledger()
    policy = ScoringPolicy()
    assert policy.churn_horizon_days == 90
    histories = histories_as_of(ledger, CALIBRATION_END)
    fit = fit_models(histories, policy, previous=None, ledger=ledger)
    table = score_histories(histories, fit.models, policy, np.zeros(len(histories)))
    later = (ledger.day > CALIBRATION_END) & (ledger.day <= CALIBRATION_END + 90)
    bought = np.zeros(int(ledger.customer.max()) + 1, dtype=bool)
    bought[ledger.customer[later]] = True
    silent = ~bought[histories.customer]
    before = forecast_quality(table.predicted.churn_risk_uncalibrated, silent)
    after = forecast_quality(table.predicted.churn_risk, silent)
    print(f"90 days: exp(-E) ECE {before.ece:.4f} Brier {before.brier:.4f} AUC {before.roc_auc}")
    print(f"90 days: calibrated ECE {after.ece:.4f} Brier {after.brier:.4f} AUC {after.roc_auc}")
    assert after.ece < 0.02
    assert after.brier <= before.brier
    assert after.roc_auc is not None
    assert before.roc_auc is not None
    assert after.roc_auc >= before.roc_auc


def test_the_model_version_reports_the_calibration_and_its_figures(
    holdout_forecasts: dict[str, object],
) -> None:
    fit = holdout_forecasts["fit"]
    report = fit.models.churn_calibration_dict()  # type: ignore[attr-defined]
    assert report is not None
    # Nine months of history hold out at most half of it: 136 days, not the full 39 weeks.
    assert report["split_horizon_days"] == 136
    # The curves pool the customers of that split and of two shorter ones ending on the same day.
    assert report["pooled_split_horizons_days"] == [136, 102, 68]
    assert report["churn_horizon_days"] == HOLDOUT_DAYS
    assert report["used"] is True
    on_split = report["on_split"]
    for figures in (on_split["uncalibrated"], on_split["calibrated"]):
        assert figures["customers"] == 2_357
        assert [b["decile"] for b in figures["reliability"]] == list(range(1, 11))
        assert sum(b["customers"] for b in figures["reliability"]) == 2_357
    # Cross-fitted on the split, the calibration helps there as on the holdout.
    assert on_split["calibrated"]["ece"] < on_split["uncalibrated"]["ece"]
    assert on_split["calibrated"]["brier"] < on_split["uncalibrated"]["brier"]
    stored = ChurnCalibration.from_dict(report)
    assert stored.one_time_buyers == fit.models.churn_calibration.one_time_buyers  # type: ignore[attr-defined]


def test_a_silence_curve_recovers_the_curve_that_made_the_data() -> None:
    rng = np.random.default_rng(3)
    expected = rng.gamma(0.8, 1.0, 20_000)
    truth = (1 + 0.7 * expected / 1.5) ** -1.5
    silent = rng.random(expected.size) < truth
    curve = fit_silence_curve(expected, silent)
    assert curve.rate_scale == pytest.approx(0.7, rel=0.1)
    assert curve.dispersion_shape == pytest.approx(1.5, rel=0.25)


def test_split_horizons_pool_the_longest_split_with_shorter_ones_of_at_least_14_days() -> None:
    assert split_horizons(136) == (136, 102, 68)
    assert split_horizons(90) == (90, 68, 45)
    assert split_horizons(20) == (20, 15)  # 10 days is too short a split to learn from
    assert split_horizons(14) == (14,)


def test_a_history_too_short_to_split_is_published_uncalibrated_with_the_reason() -> None:
    ledger = PurchaseLedger(
        np.arange(30, dtype=np.int64), np.full(30, 10_000, np.int64), np.full(30, 20.0)
    )
    assert split_horizon_days(ledger, 10_010, 90) == 5
    with pytest.raises(CalibrationNotFitted, match="need 14"):
        fit_churn_calibration(ledger, 10_010, 90)
    fit = fit_models(histories_as_of(ledger, 10_010), ScoringPolicy(), previous=None, ledger=ledger)
    assert fit.models.churn_calibration is None
    assert any("uncalibrated" in note for note in fit.notes)


def test_a_calibration_worse_than_the_model_on_the_split_is_stored_but_not_used() -> None:
    # The first 200 CDNOW customers at 90 days: on so few, the curves fit noise of the split
    # (cross-fitted Brier 0.102 against the model's 0.096), so the model's exp(-E) is published.
    full = cdnow_ledger()
    few = full.customer < 200
    ledger = PurchaseLedger(full.customer[few], full.day[few], full.amount[few])
    histories = histories_as_of(ledger, CALIBRATION_END)
    fit = fit_models(histories, ScoringPolicy(), previous=None, ledger=ledger)
    report = fit.models.churn_calibration_dict()

    assert report is not None
    assert report["on_split"]["calibrated"]["brier"] > report["on_split"]["uncalibrated"]["brier"]
    assert report["used"] is False
    assert fit.models.churn_calibration is None
    assert any("uncalibrated: on the time split" in note for note in fit.notes)
    stored = FittedModels.from_stored(
        fit.models.bg_nbd_dict(), None, fit.models.thresholds_dict(), report
    )
    assert stored.churn_calibration is None
    table = score_histories(histories, stored, ScoringPolicy(), np.zeros(len(histories)))
    assert np.array_equal(table.predicted.churn_risk, table.predicted.churn_risk_uncalibrated)


def test_calibration_changes_the_level_not_the_order_within_a_buyer_type() -> None:
    ledger = cdnow_ledger()
    calibration = fit_churn_calibration(ledger, CALIBRATION_END, HOLDOUT_DAYS)
    histories = histories_as_of(ledger, CALIBRATION_END)
    fit = fit_models(histories, ScoringPolicy(), previous=None)
    assert fit.models.bg_nbd is not None
    e = expected_purchases(fit.models.bg_nbd, 39.0, histories.x, histories.t_x, histories.T)
    risk = calibration.churn_risk(e, histories.x)
    for group in (histories.x == 0, histories.x > 0):
        order = np.argsort(e[group])
        assert np.all(np.diff(risk[group][order]) <= 1e-12)  # more purchases expected, less risk


# A large base: the calibration learns from a fixed-seed sample of its customers.

COPIES = 8


def cdnow_copies(copies: int = COPIES) -> PurchaseLedger:
    """CDNOW's customers `copies` times over, each copy's days shifted by 0-3 days: a base of
    the same behaviour, large enough that a sample of part of it is a sample."""
    ledger = cdnow_ledger()
    customers = int(ledger.customer.max()) + 1
    shift = np.random.default_rng(5).integers(0, 4, customers * copies)
    parts = []
    for copy in range(copies):
        customer = ledger.customer + copy * customers
        parts.append((customer, ledger.day - shift[customer], ledger.amount))
    customer, day, amount = (np.concatenate(column) for column in zip(*parts, strict=True))
    return PurchaseLedger(customer, day, amount)


def test_a_sample_keeps_every_order_of_the_customers_drawn_and_no_other() -> None:
    ledger = cdnow_copies(2)
    sample = sampled_customers(ledger, 1_000)
    drawn = np.unique(sample.customer)

    assert drawn.size == 1_000
    in_sample = np.isin(ledger.customer, drawn)
    assert np.array_equal(sample.customer, ledger.customer[in_sample])  # ledger order kept
    assert np.array_equal(sample.day, ledger.day[in_sample])
    assert np.array_equal(sample.amount, ledger.amount[in_sample])
    # The same base draws the same customers: a refit on unchanged data changes nothing.
    assert np.array_equal(sampled_customers(ledger, 1_000).customer, sample.customer)


def test_a_base_within_the_sample_size_is_calibrated_on_every_customer() -> None:
    ledger = cdnow_ledger()
    assert sampled_customers(ledger, 2_357) is ledger
    assert CALIBRATION_SAMPLE >= 100_000  # CDNOW's published figures use every customer
    with pytest.raises(ValueError, match="sample"):
        sampled_customers(ledger, 5)


def test_a_sampled_calibration_publishes_the_risk_of_the_whole_base_within_its_error() -> None:
    ledger = cdnow_copies()
    whole = fit_churn_calibration(ledger, CALIBRATION_END, HOLDOUT_DAYS, sample=10**9)
    sampled = fit_churn_calibration(ledger, CALIBRATION_END, HOLDOUT_DAYS, sample=6_000)

    assert whole.one_time_buyers.customers > sampled.one_time_buyers.customers
    histories = histories_as_of(ledger, CALIBRATION_END)
    bg = fit_models(histories, ScoringPolicy(), previous=None).models.bg_nbd
    assert bg is not None
    e = expected_purchases(bg, HOLDOUT_DAYS / 7, histories.x, histories.t_x, histories.T)
    risk_whole = whole.churn_risk(e, histories.x)
    risk_sampled = sampled.churn_risk(e, histories.x)
    # Published risks move by far less than a decile's width, and rank customers alike.
    assert float(np.mean(np.abs(risk_sampled - risk_whole))) < 0.01
    assert float(np.max(np.abs(risk_sampled - risk_whole))) < 0.05
    assert np.corrcoef(risk_whole, risk_sampled)[0, 1] > 0.999
    assert whole.calibrated is not None
    assert sampled.calibrated is not None
    assert sampled.calibrated.brier == pytest.approx(whole.calibrated.brier, abs=0.01)
    assert sampled.split_horizon_days == whole.split_horizon_days
