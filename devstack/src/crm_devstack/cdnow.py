"""The CDNOW sample purchases as the order events a shop would have published in 1997.

The sample (2,357 customers who first bought at CDNOW in Q1 1997, and all 6,919 of their
purchases up to June 1998; provenance in ``services/scoring-service/tests/data/PROVENANCE.md``)
is the data the scoring models are checked against. Each line becomes an ``order.placed`` at
midnight UTC of its day, customer ``cdnow-0001`` and so on, order ``cdnow-<line number>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final

from crm_contracts import Money, OrderPlaced
from crm_devstack.services import repo_root

# The end of the 39-week calibration period of Fader, Hardie & Lee (2005).
CALIBRATION_END: Final = date(1997, 9, 30)


class PurchasesUnreadable(ValueError):
    """The purchases file is missing or not in the CDNOW sample's format."""


def cdnow_sample_path() -> Path:
    """The repository's copy of the CDNOW sample."""
    return repo_root() / "services" / "scoring-service" / "tests" / "data" / "CDNOW_sample.txt"


def cdnow_orders(path: Path, *, until: date = CALIBRATION_END) -> Iterator[OrderPlaced]:
    """The purchases in `path` up to `until` (included), in file order, as ``order.placed``.

    Columns, whitespace-separated: master customer id, sample customer id, date (YYYYMMDD),
    number of CDs, dollar value.
    """
    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise PurchasesUnreadable(f"cannot read the purchases in {path}: {error}") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            _master, sample_id, yyyymmdd, _cds, dollars = line.split()
            day = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
            amount = Decimal(dollars)
            customer_id = f"cdnow-{int(sample_id):04d}"
        except (ValueError, ArithmeticError) as error:
            raise PurchasesUnreadable(
                f"{path}, line {number}: expected 'master-id sample-id YYYYMMDD cds dollars', "
                f"got {line.strip()!r}"
            ) from error
        if day > until:
            continue
        yield OrderPlaced(
            order_id=f"cdnow-{number}",
            customer_id=customer_id,
            placed_at=datetime(day.year, day.month, day.day, tzinfo=UTC),
            total=Money(amount=amount, currency="USD"),
        )
