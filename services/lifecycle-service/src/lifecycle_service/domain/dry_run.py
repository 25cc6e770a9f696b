"""The rules dry run: "if these rules were live now, who would move where, and who would be warned".

For every customer state the sweep is evaluated twice at the same ``now``: once with the rules
in force and once with the candidate rules. The candidate's moves (stored stage -> stage under
the candidate) are what a sweep would do right after the rules were replaced; the moves under
the current rules are what the next regular sweep would do anyway, so the difference between
the two matrices is the effect of the rule change alone. Warnings are counted the same way:
customers in a warned stage (under those rules) with at least one churn signal; the stage
machine's own input is never altered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from crm_contracts import Stage
from crm_shared.rule_documents import InvalidRuleDocument
from lifecycle_service.domain.rules import StageRules, validate_rules
from lifecycle_service.domain.stages import CustomerLifecycle, stage_for
from lifecycle_service.domain.warning_policy import is_warned

__all__ = ["DryRunReport", "StageMoves", "dry_run"]

StageMoves = dict[tuple[Stage, Stage], int]


@dataclass(frozen=True)
class DryRunReport:
    """What a sweep at ``now`` would do under each set of rules.

    ``*_moves`` count customers by (stored stage, stage under those rules), moves only;
    ``*_warnings`` count customers those rules would warn (see ``warning_policy``).
    """

    now: datetime
    customers: int
    current_moves: StageMoves
    candidate_moves: StageMoves
    current_warnings: int
    candidate_warnings: int

    def plus(self, other: DryRunReport) -> DryRunReport:
        """The report over both groups of customers (dry runs of a base read in chunks)."""
        return DryRunReport(
            now=self.now,
            customers=self.customers + other.customers,
            current_moves=dict(Counter(self.current_moves) + Counter(other.current_moves)),
            candidate_moves=dict(Counter(self.candidate_moves) + Counter(other.candidate_moves)),
            current_warnings=self.current_warnings + other.current_warnings,
            candidate_warnings=self.candidate_warnings + other.candidate_warnings,
        )

    @property
    def candidate_movers(self) -> int:
        """How many customers would change stage if the candidate rules went live now."""
        return sum(self.candidate_moves.values())


def dry_run(
    states: Iterable[CustomerLifecycle],
    current: StageRules,
    candidate: StageRules,
    now: datetime,
) -> DryRunReport:
    """Compare a sweep at ``now`` under ``current`` and ``candidate`` rules over ``states``.

    Raises :class:`InvalidRuleDocument` when the candidate rules are invalid: a dry run of rules
    that could never go live would answer a question nobody should ask.
    """
    problems = validate_rules(candidate)
    if problems:
        raise InvalidRuleDocument(problems)
    current_moves: Counter[tuple[Stage, Stage]] = Counter()
    candidate_moves: Counter[tuple[Stage, Stage]] = Counter()
    current_warnings = candidate_warnings = customers = 0
    for state in states:
        customers += 1
        warned = []
        for rules, moves in ((current, current_moves), (candidate, candidate_moves)):
            stage = stage_for(state, now, rules).stage
            if stage is not state.stage:
                moves[(state.stage, stage)] += 1
            warned.append(is_warned(replace(state, stage=stage), rules, now))
        current_warnings += warned[0]
        candidate_warnings += warned[1]
    return DryRunReport(
        now=now,
        customers=customers,
        current_moves=dict(current_moves),
        candidate_moves=dict(candidate_moves),
        current_warnings=current_warnings,
        candidate_warnings=candidate_warnings,
    )
