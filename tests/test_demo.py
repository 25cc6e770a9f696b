"""``make demo`` as a user runs it, on a slice of the CDNOW customers to stay quick."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from crm_devstack.cdnow import CALIBRATION_END, PurchasesUnreadable, cdnow_orders, cdnow_sample_path
from crm_devstack.demo_effects import SIMULATED_LIFT, Assignment, simulate_response

# The first 200 of the 2,357 CDNOW customers: enough for every model (BG/NBD needs 20).
CUSTOMERS = 200
DEMO_SECONDS = 240


@pytest.mark.kafka
def test_demo_replays_purchases_and_prints_what_a_retention_team_looks_at(tmp_path: Path) -> None:
    purchases = tmp_path / "purchases.txt"
    lines = cdnow_sample_path().read_text().splitlines()
    purchases.write_text("\n".join(line for line in lines if int(line.split()[1]) <= CUSTOMERS))
    replayed = sum(1 for _ in cdnow_orders(purchases))

    command = [sys.executable, "-m", "crm_devstack", "demo", "--exit", "--free-ports"]
    command += ["--data-dir", str(tmp_path / "demo"), "--purchases", str(purchases)]
    started = time.monotonic()
    demo = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=DEMO_SECONDS,
        check=False,
    )
    print(f"\ndemo of {CUSTOMERS} customers: {time.monotonic() - started:.0f} s\n{demo.stdout}")
    assert demo.returncode == 0, demo.stderr[-3000:]
    report = demo.stdout
    assert f"{replayed:,} purchases of {CUSTOMERS} customers up to 1997-09-30" in report
    for heading in (
        "Lifecycle stages at the end of 1997-09-30",
        "RFM segments",
        "Value tiers",
        "Grades",
        "Behavioural clusters",
        "Churn risk calibration",
        "Churn warnings by value tier",
        "Feedback, SIMULATED",
        "Messages decided by notification-service",
    ):
        assert heading in report, heading
    # The published churn risk is calibrated, and checked against the purchases after the end.
    assert "calibrated on who stayed silent in the 90 days after 1997-07-02" in report
    assert f"holdout: of {CUSTOMERS} customers" in report
    # The simulated feedback: counted by kind, an NPS with its answers, apologies decided.
    assert re.search(r"^  complaint +[1-9]", report, flags=re.MULTILINE), report
    assert re.search(r"NPS [+-]\d+\.\d from [1-9][\d,]* answers", report), report
    assert re.search(r"complaint-follow-up +suppressed \d+ no_contact", report), report
    # Every customer has a stage, a tier and a grade: each table adds up to all of them.
    assert len(re.findall(rf"^  total +{CUSTOMERS}$", report, flags=re.MULTILINE)) == 4
    # Nobody here is known to profile-service (no email, no account, no consent): the welcome
    # reaches no one, and the suppression says so.
    assert re.search(r"welcome-first-order +suppressed 200 no_contact", report), report
    assert "no_consent" in report
    # Marketing rules hold back their control group before consent is looked at.
    assert "holdout" in report
    effects = report[report.index("Hold-out effect of the shipped playbook") :]
    assert "SIMULATED RESPONSE" in effects
    assert re.search(r"^  warning-retention-offer +\d", effects, flags=re.MULTILINE), effects


def test_purchases_in_another_format_are_refused_with_the_line(tmp_path: Path) -> None:
    purchases = tmp_path / "purchases.txt"
    purchases.write_text(" 00004 0001 19970101  2   29.33\n 00004 0001 1997-01-18 2 29.73\n")
    with pytest.raises(PurchasesUnreadable, match="line 2"):
        list(cdnow_orders(purchases))


def test_the_simulated_response_adds_purchases_only_for_treated_customers_who_did_not_buy() -> None:
    trigger = datetime.combine(CALIBRATION_END, datetime.min.time(), tzinfo=UTC)
    buyers = {
        o.customer_id
        for o in cdnow_orders(cdnow_sample_path(), until=date(1997, 10, 30))
        if o.placed_at > trigger
    }
    treated = [Assignment(f"cdnow-{n:04d}", "treatment", trigger) for n in range(1, 2001)]
    response = simulate_response(cdnow_sample_path(), treated, seed=3)
    simulated = {order.customer_id for order in response.simulated}
    assert response.real_follow_up
    assert all(o.placed_at.date() > CALIBRATION_END for o in response.real_follow_up)
    assert not simulated & buyers
    assert response.treated_without_real_repurchase == len(
        {a.customer_id for a in treated} - buyers
    )
    share = len(simulated) / response.treated_without_real_repurchase
    assert abs(share - SIMULATED_LIFT) < 0.03  # 1,800 draws at 10%: 4 standard errors
    assert all(trigger < o.placed_at <= trigger + timedelta(days=30) for o in response.simulated)
    assert response.true_uplift == pytest.approx(
        SIMULATED_LIFT * len({a.customer_id for a in treated} - buyers) / 2000
    )
