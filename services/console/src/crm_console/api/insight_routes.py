"""``/segments`` (segments and value) and ``/lifecycle`` (stages, moves, cohorts, rates)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from crm_console.api.deps import ClientsDep, OperatorSession, render
from crm_console.clients import Service
from crm_console.domain.charts import bar_chart, column_chart, heat_map, line_chart
from crm_console.domain.flow_diagram import flow_diagram, flows_of_matrix

router = APIRouter(tags=["pages"])
HISTOGRAM_BINS = 20
STAGE_POINTS = 12  # month ends shown in "customers per stage over time"
COHORT_MONTHS_SHOWN = 12
TRANSITION_DAYS = 90
AsOf = Annotated[date | None, Query(description="The last day shown; default: today.")]


@router.get("/segments", response_class=HTMLResponse, summary="Segments and value")
async def segments(request: Request, session: OperatorSession, clients: ClientsDep) -> HTMLResponse:
    """RFM segments, value tiers, grades, clusters and the spread of CLV and churn risk."""
    overview, spread = await asyncio.gather(
        clients.get(Service.SCORING, "/v1/segments"),
        clients.get(Service.LIFECYCLE, "/v1/analytics/distributions", {"bins": HISTOGRAM_BINS}),
    )
    clv = spread["predicted_clv_12m"]
    risk = spread["churn_risk"]
    sizes = {
        name: [(s["name"], s["customers"]) for s in overview[key]]
        for name, key in (("RFM segments", "rfm_segments"), ("Value tiers", "value_tiers"),
                          ("Grades", "grades"))
    }  # fmt: skip
    charts = {
        name: bar_chart(bars, f"Customers per {name.lower()}") for name, bars in sizes.items()
    }
    currency, revenue = segment_revenue(overview["rfm_segments"])
    if revenue:
        charts[f"RFM segment revenue ({currency})"] = bar_chart(
            revenue, f"Revenue to date per RFM segment, {currency}", value_format="{:,.2f}"
        )
    context = {
        "overview": overview,
        "charts": charts,
        "cluster_columns": _cluster_columns(overview["clusters"]),
        "clv_chart": column_chart(
            [f"${edge:,.0f}" for edge in clv["edges"][:-1]],
            clv["counts"],
            "Customers by predicted 12-month CLV",
        ),
        "risk_chart": column_chart(
            [f"{edge:.0%}" for edge in risk["edges"][:-1]],
            risk["counts"],
            "Customers by churn risk",
        ),
        "clv": clv,
        "risk": risk,
    }
    return render(request, "segments.html", session, context)


def segment_revenue(segments: list[dict[str, Any]]) -> tuple[str, list[tuple[str, float]]]:
    """The base's main currency (largest revenue) and each RFM segment's revenue in it."""
    totals: dict[str, Decimal] = {}
    for segment in segments:
        for money in segment.get("revenue", []):
            totals[money["currency"]] = totals.get(money["currency"], Decimal(0)) + Decimal(
                money["amount"]
            )
    if not totals:
        return "", []
    currency = max(totals, key=lambda code: totals[code])
    bars = [
        (
            segment["name"],
            float(
                sum(Decimal(m["amount"]) for m in segment["revenue"] if m["currency"] == currency)
            ),
        )
        for segment in segments
    ]
    return currency, sorted(bars, key=lambda bar: bar[1], reverse=True)


def _cluster_columns(clusters: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for profile in clusters:
        for key in profile:
            if key not in columns and key != "name":
                columns.append(key)
    return columns


@router.get("/lifecycle", response_class=HTMLResponse, summary="Lifecycle")
async def lifecycle(
    request: Request, session: OperatorSession, clients: ClientsDep, as_of: AsOf = None
) -> HTMLResponse:
    """Customers per stage over a year, the last 90 days' moves, cohorts and rates."""
    day = as_of or date.today()
    period = {
        "from": (day - timedelta(days=TRANSITION_DAYS - 1)).isoformat(),
        "to": day.isoformat(),
    }
    counts, moves, cohorts, rates = await asyncio.gather(
        clients.get(
            Service.LIFECYCLE,
            "/v1/analytics/stages/monthly",
            {"to": day.isoformat(), "months": STAGE_POINTS},
        ),
        clients.get(Service.LIFECYCLE, "/v1/analytics/transitions", period),
        clients.get(Service.LIFECYCLE, "/v1/analytics/cohorts", {"to_month": f"{day:%Y-%m}"}),
        clients.get(
            Service.LIFECYCLE,
            "/v1/analytics/rates",
            {"from": (day - timedelta(days=29)).isoformat(), "to": day.isoformat()},
        ),
    )
    stages = [entry["stage"] for entry in counts[-1]["stages"]]
    series = {
        stage: [next(s["customers"] for s in c["stages"] if s["stage"] == stage) for c in counts]
        for stage in stages
    }
    matrix = moves["matrix"]
    cohort_rows = [c for c in cohorts["cohorts"] if c["size"]]
    context = {
        "day": day,
        "rates": rates,
        "moves": moves,
        "stage_chart": line_chart(
            [c["at"][:7] for c in counts], series, "Customers per stage, month by month"
        ),
        "latest": counts[-1],
        "transition_chart": flow_diagram(
            flows_of_matrix(
                [s.replace("_", " ") if s else "(new)" for s in matrix["from_stages"]],
                [s.replace("_", " ") for s in matrix["to_stages"]],
                matrix["customers"],
            ),
            f"Stage moves in the {TRANSITION_DAYS} days to {day}",
            element_id="stage-flow",
        ),
        "cohort_chart": heat_map(
            [f"{c['cohort']} ({c['size']})" for c in cohort_rows],
            [f"+{m}" for m in range(COHORT_MONTHS_SHOWN)],
            [
                [m["share"] for m in c["retention"][:COHORT_MONTHS_SHOWN]]
                + [None] * (COHORT_MONTHS_SHOWN - len(c["retention"]))
                for c in cohort_rows
            ],
            "Share of each first-purchase cohort buying again, months after",
        ),
    }
    return render(request, "lifecycle.html", session, context)
