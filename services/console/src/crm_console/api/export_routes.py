"""``/exports``: any list as CSV, streamed page by page from the service that owns it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from crm_console.api.deps import ClientsDep, OperatorSession, render
from crm_console.clients import QueryParams, Service, ServiceClients
from crm_console.domain.csv_rows import Column, header_line, item_line
from crm_console.settings import ConsoleSettings
from crm_contracts import Stage

router = APIRouter(prefix="/exports", tags=["exports"])
Name = Annotated[str, Query(min_length=1, max_length=100)]


@dataclass(frozen=True)
class ExportList:
    """A list the console can export: where it comes from and which columns it has."""

    service: Service
    path: str
    columns: tuple[Column, ...]


def _columns(*paths: str) -> tuple[Column, ...]:
    return tuple(Column(path.rsplit(".", 1)[-1], path) for path in paths)


WARNINGS = ExportList(
    Service.LIFECYCLE,
    "/v1/warnings",
    _columns(
        "warning_id", "customer_id", "status", "raised_at", "changed_at", "reasons",
        "churn_risk", "predicted_clv_12m", "value_tier", "grade", "recommended_action",
    ),
)  # fmt: skip
STAGE = ExportList(
    Service.LIFECYCLE,
    "/v1/customers",
    _columns(
        "customer_id", "stage", "stage_since", "last_purchase_at", "order_count",
        "churn_risk", "value_tier",
    ),
)  # fmt: skip
SEGMENT = ExportList(
    Service.SCORING,
    "/v1/scores",
    _columns(
        "customer_id", "as_of", "scores.rfm_segment", "scores.recency_score",
        "scores.frequency_score", "scores.monetary_score", "scores.order_count",
        "scores.total_spend", "scores.predicted_clv_12m", "scores.churn_risk",
        "scores.value_tier", "scores.grade", "scores.cluster",
    ),
)  # fmt: skip
DELIVERIES = ExportList(
    Service.NOTIFICATION,
    "/v1/notifications",
    _columns(
        "notification_id", "customer_id", "rule_id", "template_id", "channel", "category",
        "status", "reason", "created_at", "decided_at", "finished_at", "attempts",
    ),
)  # fmt: skip


@router.get("", response_class=HTMLResponse, summary="What can be exported")
async def exports(request: Request, session: OperatorSession, clients: ClientsDep) -> HTMLResponse:
    """Links and forms for each export."""
    segments = await clients.get(Service.SCORING, "/v1/segments")
    context = {
        "stages": [stage.value for stage in Stage],
        "segments": [s["name"] for s in segments["rfm_segments"]],
    }
    return render(request, "exports.html", session, context)


@router.get("/warnings.csv", summary="Open churn warnings as CSV")
async def warnings_csv(request: Request, clients: ClientsDep) -> StreamingResponse:
    """Every open warning, newest first."""
    return await _stream(request, clients, WARNINGS, {"status": "open"}, "open-warnings.csv")


@router.get("/stage.csv", summary="Customers in a stage as CSV")
async def stage_csv(request: Request, clients: ClientsDep, stage: Stage) -> StreamingResponse:
    """Every customer in `stage`."""
    return await _stream(request, clients, STAGE, {"stage": stage.value}, f"stage-{stage}.csv")


@router.get("/segment.csv", summary="Customers in an RFM segment as CSV")
async def segment_csv(request: Request, clients: ClientsDep, segment: Name) -> StreamingResponse:
    """Every customer in RFM segment `segment`, with their scores."""
    filename = "segment-" + "".join(c if c.isalnum() else "-" for c in segment) + ".csv"
    return await _stream(request, clients, SEGMENT, {"segment": segment}, filename)


@router.get("/deliveries.csv", summary="The delivery log as CSV")
async def deliveries_csv(request: Request, clients: ClientsDep) -> StreamingResponse:
    """Every message decided, newest first."""
    return await _stream(request, clients, DELIVERIES, {}, "delivery-log.csv")


async def _stream(
    request: Request,
    clients: ServiceClients,
    export: ExportList,
    params: QueryParams,
    filename: str,
) -> StreamingResponse:
    settings: ConsoleSettings = request.app.state.settings
    items = clients.pages(export.service, export.path, params)
    # The first page is read before the answer starts, so a refusal (a bad filter, a key
    # without access) is an error page rather than a truncated file.
    first = await anext(items, None)

    async def lines() -> AsyncIterator[str]:
        yield header_line(export.columns)
        if first is None:
            return
        yield item_line(first, export.columns)
        written = 1
        async for item in items:
            if written >= settings.export_max_rows:
                return
            yield item_line(item, export.columns)
            written += 1

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
