"""``make demo`` as a user runs it, on a slice of the CDNOW customers to stay quick."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crm_devstack.cdnow import PurchasesUnreadable, cdnow_orders, cdnow_sample_path

# The first 200 of the 2,357 CDNOW customers: enough for every model (BG/NBD needs 20).
CUSTOMERS = 200
DEMO_SECONDS = 150


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
        "Churn warnings by value tier",
        "Feedback, SIMULATED",
        "Messages decided by notification-service",
    ):
        assert heading in report, heading
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


def test_purchases_in_another_format_are_refused_with_the_line(tmp_path: Path) -> None:
    purchases = tmp_path / "purchases.txt"
    purchases.write_text(" 00004 0001 19970101  2   29.33\n 00004 0001 1997-01-18 2 29.73\n")
    with pytest.raises(PurchasesUnreadable, match="line 2"):
        list(cdnow_orders(purchases))
