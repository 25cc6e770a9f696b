"""``/v1/rules``: the playbook, rule by rule. Changing who gets messages takes an admin key."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from crm_shared import AdminAccess, ReadAccess, SessionDep, problem_responses, utc_now
from crm_shared.errors import UnprocessableContent, must_exist
from crm_shared.rule_documents import InvalidRuleDocument
from notification_service.api.schemas import RuleIn, RuleView
from notification_service.domain.playbooks import PlaybookRule
from notification_service.workflows import playbook_editing, playbook_store

router = APIRouter(prefix="/v1/rules", tags=["rules"])
_NO_SUCH_RULE = problem_responses({404: "No rule with this id"})


@router.get("", response_model=list[RuleView], summary="Every rule of the playbook")
async def list_rules(session: SessionDep, _: ReadAccess) -> list[RuleView]:
    """Every rule, enabled or not, by id."""
    return [_view(rule) for rule in await playbook_store.all_rules(session)]


@router.get("/{rule_id}", response_model=RuleView, summary="A rule", responses=_NO_SUCH_RULE)
async def read_rule(rule_id: str, session: SessionDep, _: ReadAccess) -> RuleView:
    """One rule, as PUT accepts it back."""
    rule = must_exist(await playbook_store.rule_by_id(session, rule_id), f"No rule {rule_id!r}.")
    return _view(rule)


@router.post(
    "",
    response_model=RuleView,
    status_code=status.HTTP_201_CREATED,
    summary="Add a rule",
    responses=problem_responses({409: "A rule with this id exists."}),
)
async def create_rule(
    body: RuleIn, response: Response, session: SessionDep, _: AdminAccess
) -> RuleView:
    """The rule fires for events that arrive from now on. Refused with every field at fault
    when it is invalid or its template lacks a text for one of its channels."""
    rule = _parse(body)
    try:
        await playbook_editing.create_rule(session, rule, utc_now())
    except InvalidRuleDocument as invalid:
        raise _rule_problem(invalid) from invalid
    response.headers["Location"] = f"{router.prefix}/{rule.rule_id}"
    return _view(rule)


@router.put(
    "/{rule_id}", response_model=RuleView, summary="Replace a rule", responses=_NO_SUCH_RULE
)
async def replace_rule(rule_id: str, body: RuleIn, session: SessionDep, _: AdminAccess) -> RuleView:
    """The whole rule: fields left out take their defaults. Messages already queued by it are
    checked against it when due (disabled: suppressed). The body's rule_id, if given, must be
    the path's."""
    if body.rule_id is not None and body.rule_id != rule_id:
        raise UnprocessableContent(
            f"rule_id {body.rule_id!r} differs from the path's {rule_id!r}; a rule's id "
            "cannot change (create the new rule and delete this one).",
            field="rule_id",
        )
    rule = _parse(body, rule_id)
    try:
        await playbook_editing.replace_rule(session, rule, utc_now())
    except InvalidRuleDocument as invalid:
        raise _rule_problem(invalid) from invalid
    return _view(rule)


@router.delete(
    "/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a rule",
    responses=_NO_SUCH_RULE,
)
async def delete_rule(rule_id: str, session: SessionDep, _: AdminAccess) -> Response:
    """Queues nothing more; its messages still queued are suppressed when due."""
    await playbook_editing.remove_rule(session, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _parse(body: RuleIn, rule_id: str | None = None) -> PlaybookRule:
    document = body.model_dump(mode="json", exclude_unset=True)
    if rule_id is not None:
        document["rule_id"] = rule_id
    try:
        return PlaybookRule.from_dict(document)
    except InvalidRuleDocument as invalid:
        raise _rule_problem(invalid) from invalid


def _rule_problem(invalid: InvalidRuleDocument) -> UnprocessableContent:
    return invalid.as_problem("The rule is not valid")


def _view(rule: PlaybookRule) -> RuleView:
    return RuleView.model_validate(rule.to_dict())
