"""``/v1/customers`` (stages), ``/v1/rules``, ``/v1/warnings`` and ``/v1/sweeps``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, status

from crm_contracts import QueryTime, Stage
from crm_shared import (
    AdminAccess,
    AfterId,
    CursorPosition,
    CursorText,
    Page,
    PageLimit,
    ReadAccess,
    RuntimeDep,
    SessionDep,
    TimeWindow,
    decode_cursor,
    page_of,
    problem_responses,
    utc_now,
)
from crm_shared.errors import Conflict, UnprocessableContent, must_exist
from crm_shared.rule_documents import InvalidRuleDocument
from lifecycle_service.api import SettingsDep
from lifecycle_service.api.schemas import (
    CustomerStage,
    DryRunRequest,
    DryRunView,
    RulesReplacement,
    RulesView,
    StageEntry,
    StageMember,
    StageMove,
    SweepRequest,
    SweepView,
    WarningAtRiskView,
    WarningView,
)
from lifecycle_service.db.models import ChurnWarningRow, CustomerLifecycleRow
from lifecycle_service.domain.dry_run import StageMoves
from lifecycle_service.domain.rules import StageRules
from lifecycle_service.workflows import rules_store, stage_queries
from lifecycle_service.workflows.sweep import SweepAlreadyRunning, sweep

router = APIRouter(prefix="/v1")


class WarningPosition(CursorPosition):
    """Where a page of warnings (newest first) ended."""

    raised_at: QueryTime
    id: CursorText


@router.get(
    "/customers/{customer_id}/stage",
    response_model=CustomerStage,
    tags=["stages"],
    summary="A customer's stage and history",
    responses=problem_responses({404: "lifecycle-service has seen no event of this customer"}),
)
async def customer_stage(customer_id: str, session: SessionDep, _: ReadAccess) -> CustomerStage:
    """The stage, the facts the rules judged it by, the open warning and every past move."""
    found = must_exist(
        await stage_queries.customer_with_history(session, customer_id),
        f"lifecycle-service knows no customer {customer_id}.",
    )
    row, history, warning = found
    return CustomerStage(
        customer_id=row.customer_id,
        stage=Stage(row.stage),
        stage_since=row.stage_since,
        first_purchase_at=row.first_purchase_at,
        last_purchase_at=row.last_purchase_at,
        order_count=row.order_count,
        average_order_value=row.average_order_value,
        expected_interpurchase_days=row.expected_interpurchase_days,
        churn_risk=row.churn_risk,
        value_tier=row.value_tier,
        grade=row.grade,
        predicted_clv_12m=row.predicted_clv_12m,
        next_review_at=row.next_review_at,
        open_warning=_warning_view(warning) if warning is not None else None,
        history=[
            StageEntry(
                previous_stage=Stage(t.previous_stage) if t.previous_stage else None,
                stage=Stage(t.stage),
                at=t.at,
                cause=t.cause,
                reason=t.reason,
            )
            for t in history
        ],
    )


@router.get(
    "/customers",
    response_model=Page[StageMember],
    tags=["stages"],
    summary="Customers in a stage",
)
async def customers_by_stage(
    session: SessionDep,
    _: ReadAccess,
    stage: Stage,
    cursor: str | None = None,
    limit: PageLimit = 50,
) -> Page[StageMember]:
    """Customers in ``stage``, ordered by id, cursor-paginated."""
    position = decode_cursor(cursor, AfterId)
    rows = await stage_queries.customers_in_stage(
        session, stage, after_id=position.after if position else None, limit=limit + 1
    )
    return page_of(rows, limit, lambda row: AfterId(after=row.customer_id), _stage_member)


@router.get("/rules", response_model=RulesView, tags=["rules"], summary="The rules in force")
async def read_rules(session: SessionDep, _: ReadAccess) -> RulesView:
    """Every threshold of the stage machine and of churn warnings, with its version."""
    return _rules_view(await rules_store.current_rules(session))


@router.get(
    "/rules/versions", response_model=list[RulesView], tags=["rules"], summary="Rules history"
)
async def rules_versions(session: SessionDep, _: ReadAccess) -> list[RulesView]:
    """Every stored version, newest first (none stored: the defaults are in force)."""
    return [_rules_view(version) for version in await rules_store.rules_history(session)]


@router.put("/rules", response_model=RulesView, tags=["rules"], summary="Replace the rules")
async def replace_rules(
    body: RulesReplacement, session: SessionDep, principal: AdminAccess
) -> RulesView:
    """Validates and stores the rules as the next version; every customer is reviewed under
    them at the next sweep. Invalid rules are refused with every field at fault."""
    rules = _parse_rules(body.rules)
    try:
        stored = await rules_store.replace_rules(
            session, rules, author=principal.name, comment=body.comment, now=utc_now()
        )
    except InvalidRuleDocument as invalid:
        raise _rules_problem(invalid) from invalid
    return _rules_view(stored)


@router.post(
    "/rules/dry-run", response_model=DryRunView, tags=["rules"], summary="Try rules before use"
)
async def dry_run_rules(body: DryRunRequest, session: SessionDep, _: ReadAccess) -> DryRunView:
    """If these rules were live at ``as_of``, how many customers would move from which stage
    to which, and how many would be warned; compared with the rules in force. Reads every
    customer (an analysis, not a request to make per page view)."""
    candidate = _parse_rules(body.rules)
    current = await rules_store.current_rules(session)
    as_of = body.as_of or utc_now()
    try:
        report = await stage_queries.dry_run_over_base(session, current.rules, candidate, as_of)
    except InvalidRuleDocument as invalid:
        raise _rules_problem(invalid) from invalid
    return DryRunView(
        as_of=as_of,
        rules_version=current.version,
        customers=report.customers,
        candidate_moves=_moves(report.candidate_moves),
        candidate_movers=report.candidate_movers,
        candidate_warnings=report.candidate_warnings,
        current_moves=_moves(report.current_moves),
        current_warnings=report.current_warnings,
    )


@router.get(
    "/warnings", response_model=Page[WarningView], tags=["warnings"], summary="Churn warnings"
)
async def warnings(
    session: SessionDep,
    _: ReadAccess,
    status_filter: Annotated[
        str | None,
        Query(
            alias="status", pattern="^(open|updated|saved|lost)$", description="open: still open"
        ),
    ] = None,
    tier: str | None = Query(default=None, description="strategic_partner, growth, profit, basic"),
    customer_id: str | None = None,
    raised_from: QueryTime | None = None,
    raised_to: QueryTime | None = None,
    cursor: str | None = None,
    limit: PageLimit = 50,
) -> Page[WarningView]:
    """Warnings newest first, filtered by status, tier, customer or raised time (a time
    without offset is UTC)."""
    position = decode_cursor(cursor, WarningPosition)
    raised = TimeWindow(raised_from, raised_to)
    criteria = stage_queries.WarningFilter(status_filter, tier, customer_id, raised)
    rows = await stage_queries.list_warnings(
        session,
        criteria,
        after=(position.raised_at, position.id) if position else None,
        limit=limit + 1,
    )
    return page_of(
        rows,
        limit,
        lambda row: WarningPosition(raised_at=row.raised_at, id=row.warning_id),
        _warning_view,
    )


@router.get(
    "/warnings/at-risk",
    response_model=list[WarningAtRiskView],
    tags=["warnings"],
    summary="Open warnings by value at risk",
)
async def warnings_at_risk(
    session: SessionDep,
    _: ReadAccess,
    limit: PageLimit = 50,
) -> list[WarningAtRiskView]:
    """The open churn warnings that put the most 12-month value at risk (predicted 12-month
    CLV x churn risk), largest first: the retention team's work list for today."""
    rows = await stage_queries.open_warnings_by_value_at_risk(session, limit)
    return [
        WarningAtRiskView(
            **_warning_view(row).model_dump(),
            stage=Stage(stage) if stage is not None else None,
            clv_at_risk_12m=(
                row.predicted_clv_12m * row.churn_risk
                if row.predicted_clv_12m is not None and row.churn_risk is not None
                else None
            ),
        )
        for row, stage in rows
    ]


@router.post(
    "/sweeps",
    response_model=SweepView,
    status_code=status.HTTP_201_CREATED,
    tags=["sweeps"],
    summary="Run the aging sweep now",
    responses=problem_responses({409: "Another sweep is running"}),
)
async def run_sweep(
    body: SweepRequest, settings: SettingsDep, runtime: RuntimeDep, _: AdminAccess
) -> SweepView:
    """Moves every customer whose review time has come by ``as_of`` (default now) and raises
    or expires warnings. 409 while another sweep runs."""
    try:
        report = await sweep(
            runtime,
            body.as_of or utc_now(),
            chunk_size=settings.sweep_chunk_size,
            trigger="api",
            clock=utc_now,
        )
    except SweepAlreadyRunning as running:
        raise Conflict("Another sweep is running; try again when it ends.") from running
    return SweepView(**asdict(report), trigger="api")


@router.get("/sweeps", response_model=list[SweepView], tags=["sweeps"], summary="Recent sweeps")
async def sweeps(
    session: SessionDep, _: ReadAccess, limit: Annotated[int, Query(ge=1, le=200)] = 20
) -> list[SweepView]:
    """The latest sweeps, newest first, with what each reviewed and changed."""
    return [
        SweepView(
            as_of=run.as_of,
            reviewed=run.reviewed,
            moved=run.moved,
            warnings_raised=run.warnings_raised,
            warnings_closed=run.warnings_closed,
            seconds=(run.finished_at - run.started_at).total_seconds(),
            trigger=run.trigger,
        )
        for run in await stage_queries.recent_sweeps(session, limit)
    ]


def _parse_rules(document: dict[str, object]) -> StageRules:
    try:
        return StageRules.from_dict(document)
    except InvalidRuleDocument as invalid:
        raise _rules_problem(invalid) from invalid


def _rules_problem(invalid: InvalidRuleDocument) -> UnprocessableContent:
    return invalid.as_problem("The rules are not valid", field_prefix="rules.")


def _rules_view(version: rules_store.RulesVersion) -> RulesView:
    return RulesView(
        version=version.version,
        created_at=version.created_at,
        created_by=version.created_by,
        comment=version.comment,
        rules=version.rules.to_dict(),
    )


def _moves(moves: StageMoves) -> list[StageMove]:
    return [
        StageMove(from_stage=source, to_stage=target, customers=count)
        for (source, target), count in sorted(moves.items(), key=lambda item: -item[1])
    ]


def _stage_member(row: CustomerLifecycleRow) -> StageMember:
    return StageMember(
        customer_id=row.customer_id,
        stage=Stage(row.stage),
        stage_since=row.stage_since,
        last_purchase_at=row.last_purchase_at,
        order_count=row.order_count,
        churn_risk=row.churn_risk,
        value_tier=row.value_tier,
    )


def _warning_view(row: ChurnWarningRow) -> WarningView:
    return WarningView.model_validate(row, from_attributes=True)
