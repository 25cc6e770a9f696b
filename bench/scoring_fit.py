"""Scoring-service models at a million customers: fit BG/NBD + Gamma-Gamma, then re-score everyone.

Generates customers from a BG/NBD purchase process and Gamma-Gamma spend with known parameters
(vectorised numpy; times rounded to whole days, then converted to weeks), then times:
  1. collapsing the histories to distinct (x, t_x, T) rows,
  2. the BG/NBD fit on those rows (with the regularised fallback armed),
  3. the Gamma-Gamma fit on the customers with repeat purchases,
  4. a full re-score: P(alive), expected purchases in 30/90/365 days, 90-day churn risk and
     12-month CLV for every customer (computed once per distinct history, then expanded), and the
     same re-score computed customer by customer, for comparison.
Each phase reports wall time and the peak of memory traced by tracemalloc (numpy reports its
buffers to it) during the phase: allocations since tracing began, which excludes the synthetic
data made before. The process's peak RSS, everything included, is printed at the end.

If a Python with the `lifetimes` package is given (a throwaway venv, never the project's), its
BetaGeoFitter fits the same customers in a subprocess (all of them unless --lifetimes-customers
says fewer; it evaluates the likelihood per customer, without collapsing), and the fit times and
parameters are compared.

    python bench/scoring_fit.py [--customers 1000000] [--seed 1]
        [--lifetimes-python /tmp/lt/bin/python] [--lifetimes-customers N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import tempfile
import textwrap
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from lib.report import format_table, machine_summary
from lib.synthetic_fit import ACQUISITION_DAYS, DAYS_PER_WEEK, TRUE_BG, TRUE_GG, Customers, simulate

from scoring_service.domain.bg_nbd import (
    BgNbdParameters,
    expected_purchases,
    fit_bg_nbd,
    fit_bg_nbd_with_fallback,
    p_alive,
    probability_no_purchase,
)
from scoring_service.domain.clv import discounted_expected_purchases, predicted_clv
from scoring_service.domain.collapsed_histories import collapse
from scoring_service.domain.gamma_gamma import (
    GammaGammaParameters,
    conditional_expected_spend,
    fit_gamma_gamma_with_fallback,
)

T_ = TypeVar("T_")


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    peak_mib: float
    note: str = ""


def timed(name: str, work: Callable[[], T_], phases: list[Phase], note: str = "") -> T_:
    tracemalloc.reset_peak()
    start = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    phases.append(Phase(name, seconds, peak / 2**20, note))
    return result


def rescore_via_rows(bg: BgNbdParameters, gg: GammaGammaParameters, c: Customers) -> dict[str, Any]:
    """Every score per distinct history, expanded to customers; spend per customer."""
    rows = collapse(c.x, c.t_x, c.T)
    scores = {
        "p_alive": rows.expand(p_alive(bg, rows.x, rows.t_x, rows.T)),
        **{
            f"expected_purchases_{days}d": rows.expand(
                expected_purchases(bg, days / DAYS_PER_WEEK, rows.x, rows.t_x, rows.T)
            )
            for days in (30, 90, 365)
        },
        "churn_risk_90d": rows.expand(
            probability_no_purchase(bg, 90 / DAYS_PER_WEEK, rows.x, rows.t_x, rows.T)
        ),
    }
    purchases = rows.expand(discounted_expected_purchases(bg, rows.x, rows.t_x, rows.T))
    scores["clv_12m"] = purchases * conditional_expected_spend(gg, c.x, c.zbar)
    return scores


def rescore_per_customer(
    bg: BgNbdParameters, gg: GammaGammaParameters, c: Customers
) -> dict[str, Any]:
    return {
        "p_alive": p_alive(bg, c.x, c.t_x, c.T),
        **{
            f"expected_purchases_{days}d": expected_purchases(
                bg, days / DAYS_PER_WEEK, c.x, c.t_x, c.T
            )
            for days in (30, 90, 365)
        },
        "churn_risk_90d": probability_no_purchase(bg, 90 / DAYS_PER_WEEK, c.x, c.t_x, c.T),
        "clv_12m": predicted_clv(bg, gg, c.x, c.t_x, c.T, c.zbar),
    }


LIFETIMES_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, warnings
    import numpy as np
    import pandas as pd
    import lifetimes
    from lifetimes import BetaGeoFitter
    warnings.simplefilter("ignore")
    folder = sys.argv[1]
    x, t_x, T = (np.load(f"{folder}/{name}.npy") for name in ("x", "t_x", "T"))
    fitter = BetaGeoFitter()
    start = time.perf_counter()
    fitter.fit(pd.Series(x), pd.Series(t_x), pd.Series(T))
    seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds,
        "version": lifetimes.__version__,
        "params": {name: float(fitter.params_[name]) for name in ("r", "alpha", "a", "b")},
    }))
    """
)


def lifetimes_fit(python: str, c: Customers, customers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scoring-fit-bench-") as folder:
        for name in ("x", "t_x", "T"):
            np.save(Path(folder) / f"{name}.npy", getattr(c, name)[:customers])
        script = Path(folder) / "fit_with_lifetimes.py"
        script.write_text(LIFETIMES_SCRIPT)
        completed = subprocess.run(
            [python, str(script), folder], capture_output=True, text=True, timeout=600, check=False
        )
    if completed.returncode != 0:
        raise RuntimeError(completed.stderr.strip().splitlines()[-1] if completed.stderr else "?")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def three_significant_digits(value: float) -> str:
    return f"{value:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lifetimes-python", default="/tmp/lt/bin/python")
    parser.add_argument(
        "--lifetimes-customers", type=int, default=None, help="default: all the customers"
    )
    args = parser.parse_args()

    print("# Scoring models: fit and re-score (BG/NBD + Gamma-Gamma)")
    for key, value in machine_summary().items():
        print(f"{key}: {value}")
    print(f"numpy {np.__version__}, scipy {__import__('scipy').__version__}")
    print()

    customers = simulate(args.customers, args.seed)
    repeat_share = float(np.mean(customers.x > 0))
    tracemalloc.start()
    phases: list[Phase] = []
    rows = timed(
        "collapse histories", lambda: collapse(customers.x, customers.t_x, customers.T), phases
    )
    phases[-1] = replace(
        phases[-1], note=f"{rows.customer_count:,} customers -> {rows.row_count:,} distinct rows"
    )
    bg_fit = timed(
        "BG/NBD fit (on rows)",
        lambda: fit_bg_nbd_with_fallback(rows.x, rows.t_x, rows.T, weights=rows.weights),
        phases,
    )
    gg_fit = timed(
        "Gamma-Gamma fit",
        lambda: fit_gamma_gamma_with_fallback(customers.x, customers.zbar),
        phases,
        f"{int(np.count_nonzero(customers.x > 0)):,} customers with x > 0",
    )
    fit_total = sum(phase.seconds for phase in phases)
    via_rows = timed(
        "re-score all (per distinct row)",
        lambda: rescore_via_rows(bg_fit.params, gg_fit.params, customers),
        phases,
        "p_alive, E[purchases] 30/90/365 d, churn 90 d, CLV 12 m",
    )
    per_customer = timed(
        "re-score all (per customer)",
        lambda: rescore_per_customer(bg_fit.params, gg_fit.params, customers),
        phases,
        "same scores, no collapsing",
    )
    tracemalloc.stop()
    agree = all(np.allclose(via_rows[k], per_customer[k], rtol=1e-12, atol=0) for k in via_rows)
    no_nan = all(bool(np.all(np.isfinite(values))) for values in via_rows.values())

    print(
        f"{args.customers:,} synthetic customers, {repeat_share:.1%} with repeat purchases, "
        f"first purchases over {ACQUISITION_DAYS} days"
    )
    print()
    print(
        format_table(
            ["phase", "seconds", "peak traced MiB", "note"],
            [[p.name, round(p.seconds, 2), round(p.peak_mib, 1), p.note] for p in phases]
            + [["fit total (collapse + BG/NBD + Gamma-Gamma)", round(fit_total, 2), "", ""]],
        )
    )
    print()
    print(f"re-score per row == per customer: {agree}; any NaN or infinity: {not no_nan}")
    print(f"BG/NBD: {bg_fit.method}, converged={bg_fit.converged}, {bg_fit.iterations} iterations")
    print(f"Gamma-Gamma: {gg_fit.method}, converged={gg_fit.converged}, {gg_fit.iterations} iter.")
    print()
    fitted = [
        ("r", TRUE_BG.r, bg_fit.params.r),
        ("alpha", TRUE_BG.alpha, bg_fit.params.alpha),
        ("a", TRUE_BG.a, bg_fit.params.a),
        ("b", TRUE_BG.b, bg_fit.params.b),
        ("p", TRUE_GG.p, gg_fit.params.p),
        ("q", TRUE_GG.q, gg_fit.params.q),
        ("v (gamma)", TRUE_GG.v, gg_fit.params.v),
    ]
    print(
        format_table(
            ["parameter", "true", "fitted"],
            [[name, f"{true:.4g}", f"{value:.4g}"] for name, true, value in fitted],
        )
    )
    print()
    compare_with_lifetimes(args, customers)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(
        f"process peak RSS: {peak_rss_mib:,.0f} MiB (includes the synthetic data and numpy/scipy)"
    )


def compare_with_lifetimes(args: argparse.Namespace, customers: Customers) -> None:
    subset = min(args.lifetimes_customers or len(customers.x), len(customers.x))
    print(f"## lifetimes BetaGeoFitter on the first {subset:,} customers")
    if not Path(args.lifetimes_python).exists():
        print(f"skipped: {args.lifetimes_python} not found; to compare, run")
        print("  python3 -m venv /tmp/lt && /tmp/lt/bin/pip install lifetimes")
        return
    try:
        theirs = lifetimes_fit(args.lifetimes_python, customers, subset)
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"skipped: lifetimes failed: {error}")
        return
    start = time.perf_counter()
    ours = fit_bg_nbd(customers.x[:subset], customers.t_x[:subset], customers.T[:subset])
    our_seconds = time.perf_counter() - start
    rows = []
    for name in ("r", "alpha", "a", "b"):
        mine, other = getattr(ours.params, name), theirs["params"][name]
        same = three_significant_digits(mine) == three_significant_digits(other)
        relative_difference = abs(mine - other) / abs(other)
        rows.append(
            [
                name,
                f"{mine:.5g}",
                f"{other:.5g}",
                f"{relative_difference:.1e}",
                "yes" if same else "no",
            ]
        )
    print(
        format_table(
            [
                "parameter",
                "scoring_service",
                f"lifetimes {theirs['version']}",
                "rel. diff",
                "same to 3 s.f.",
            ],
            rows,
        )
    )
    print()
    print(
        format_table(
            ["BG/NBD fit", "seconds"],
            [
                ["scoring_service (collapse + fit)", round(our_seconds, 3)],
                [f"lifetimes {theirs['version']}", round(theirs["seconds"], 3)],
                ["speed-up", f"{theirs['seconds'] / our_seconds:.0f}x"],
            ],
        )
    )


if __name__ == "__main__":
    main()
