"""The lifecycle stage machine: where a customer stands, and the events and time that move them.

Stages: ``prospect`` (known, never bought), ``new`` (first purchase less than
``rules.new_days`` ago), ``active`` (a buyer past the new window), ``loyal`` (repeat buyer of
high value and low churn risk), ``at_risk``, ``dormant``, ``churned`` (declining, by silence or,
for ``at_risk``, by churn risk) and ``won_back`` (bought again after declining; settles into
``active`` or ``loyal`` after ``rules.won_back_settling_days``).

Three things move a customer, each a pure function returning ``(new_state, Transition | None)``:

- :func:`on_order`: a purchase. prospect -> new; at_risk/dormant/churned -> won_back; any
  other stage is re-evaluated by the same rules as a sweep (a purchase resets the silence, so
  new, active, loyal and won_back customers usually keep their stage).
- :func:`on_scores`: a ``score.updated``. Loyal enter/exit with hysteresis, and at_risk by churn
  risk (a design choice: the churn risk is the scoring models' best estimate of decline, so it
  may move an active or loyal customer to at_risk before the silence does).
- :func:`on_sweep`: time passing. Silence against the customer's rhythm (or the fixed
  fall-backs), the end of the new window, won_back settling.

All three end in :func:`stage_for`, the single answer to "which stage do the rules give this
customer at this moment, given the stage they are in". It is a fixed point (applying it to its
own result changes nothing), which is what makes a sweep run twice at the same ``now`` a no-op.

Decisions worth knowing:

- The new window is protected: for ``new_days`` after the first purchase a customer is ``new``
  whatever the silence or scores say (too little history to judge).
- Silence uses the rhythm only when it is known and backed by ``min_orders_for_rhythm`` orders;
  otherwise the fixed fall-backs in days. So a one-time buyer goes new -> at_risk at day 91.
- A purchase clears the churn risk unless scores newer than the purchase already arrived: the
  old risk described the customer before they bought, and keeping it would push a freshly
  won-back customer straight back to at_risk. The next ``score.updated`` brings a fresh one.
- Scores older than the ones already applied are ignored (redelivery, out-of-order topics).
- There is no hidden clock: every function takes the time it acts at.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from crm_contracts import Grade, Stage, ValueTier
from lifecycle_service.domain.rules import Band, StageRules

__all__ = [
    "DECLINING_STAGES",
    "SWEEP_CAUSE",
    "CustomerLifecycle",
    "StageDecision",
    "Transition",
    "new_prospect",
    "on_correction",
    "on_order",
    "on_scores",
    "on_sweep",
    "silence_days",
    "stage_for",
]

SWEEP_CAUSE: Final = "sweep"
DECLINING_STAGES: Final = (Stage.AT_RISK, Stage.DORMANT, Stage.CHURNED)
_DAY: Final = timedelta(days=1)
# How far each stage has declined; the silence and churn-risk rules compare these levels.
_DECLINE_LEVEL: Final = {stage: level for level, stage in enumerate(DECLINING_STAGES, start=1)}


@dataclass(frozen=True)
class CustomerLifecycle:
    """What the stage machine knows about one customer, and the stage they are in."""

    customer_id: str
    stage: Stage
    stage_since: datetime
    first_purchase_at: datetime | None = None
    last_purchase_at: datetime | None = None
    order_count: int = 0
    average_order_value: float | None = None
    last_order_value: float | None = None
    # From score.updated; None until the models have seen enough of the customer.
    expected_interpurchase_days: float | None = None
    churn_risk: float | None = None
    value_tier: ValueTier | None = None
    grade: Grade | None = None
    predicted_clv_12m: float | None = None
    # The ``as_of`` of the newest scores applied, to ignore older ones arriving late.
    scores_as_of: datetime | None = None


@dataclass(frozen=True)
class Transition:
    """A stage change, as stored in the history and published as ``lifecycle.stage_changed``."""

    previous_stage: Stage | None
    stage: Stage
    at: datetime
    cause: str  # the id of the triggering event, or "sweep"
    reason: str  # the rule that moved the customer, in words


@dataclass(frozen=True)
class StageDecision:
    """The stage the rules give a customer, and why.

    The reason is worded only when asked for: a sweep evaluates millions of customers and
    keeps the words of the few who move.
    """

    stage: Stage
    explain: Callable[[], str] = field(compare=False, repr=False)

    @property
    def reason(self) -> str:
        """The rule that gives the stage, in words."""
        return self.explain()


def new_prospect(
    customer_id: str, at: datetime, cause: str
) -> tuple[CustomerLifecycle, Transition]:
    """A customer the shop knows but who never bought: the start of every lifecycle."""
    state = CustomerLifecycle(customer_id=customer_id, stage=Stage.PROSPECT, stage_since=at)
    return state, Transition(None, Stage.PROSPECT, at, cause, "customer known, no purchase yet")


def silence_days(state: CustomerLifecycle, now: datetime) -> float | None:
    """Days since the last purchase (fractional), or None for a customer who never bought."""
    if state.last_purchase_at is None:
        return None
    return max((now - state.last_purchase_at) / _DAY, 0.0)


def on_order(
    state: CustomerLifecycle,
    at: datetime,
    amount: float,
    cause_event_id: str,
    rules: StageRules,
) -> tuple[CustomerLifecycle, Transition | None]:
    """Apply a purchase of ``amount`` placed at ``at``.

    prospect -> new; at_risk, dormant or churned -> won_back; other stages are re-evaluated by
    :func:`stage_for` (a purchase resets the silence, so they usually stay).
    """
    count = state.order_count + 1
    previous_total = (state.average_order_value or 0.0) * state.order_count
    last_purchase = at if state.last_purchase_at is None else max(state.last_purchase_at, at)
    scores_are_newer = state.scores_as_of is not None and state.scores_as_of >= at
    bought = replace(
        state,
        first_purchase_at=at
        if state.first_purchase_at is None
        else min(state.first_purchase_at, at),
        last_purchase_at=last_purchase,
        order_count=count,
        average_order_value=(previous_total + amount) / count,
        last_order_value=amount,
        churn_risk=state.churn_risk if scores_are_newer else None,
    )
    if state.stage is Stage.PROSPECT:
        decision = StageDecision(Stage.NEW, lambda: "first purchase")
    elif state.stage in DECLINING_STAGES:
        silent = silence_days(state, at)
        declined_stage = state.stage.value
        decision = StageDecision(
            Stage.WON_BACK,
            lambda: (
                f"purchase after {silent:.0f} days of silence while {declined_stage}"
                if silent is not None
                else f"purchase while {declined_stage}"
            ),
        )
    else:
        decision = stage_for(bought, at, rules)
    return _move(bought, decision, at, cause_event_id)


def on_scores(
    state: CustomerLifecycle,
    *,
    as_of: datetime,
    churn_risk: float | None,
    value_tier: ValueTier | None,
    grade: Grade | None,
    expected_interpurchase_days: float | None,
    predicted_clv_12m: float | None = None,
    cause_event_id: str,
    rules: StageRules,
) -> tuple[CustomerLifecycle, Transition | None]:
    """Apply a ``score.updated`` describing the customer at ``as_of``.

    Scores older than those already applied change nothing. Otherwise the scores are stored
    and the stage re-evaluated at ``as_of``: this is where loyal is entered and left, and where
    a high churn risk makes an active or loyal customer at_risk.
    """
    if state.scores_as_of is not None and as_of < state.scores_as_of:
        return state, None
    scored = replace(
        state,
        churn_risk=churn_risk,
        value_tier=value_tier,
        grade=grade,
        expected_interpurchase_days=expected_interpurchase_days,
        predicted_clv_12m=predicted_clv_12m,
        scores_as_of=as_of,
    )
    return _move(scored, stage_for(scored, as_of, rules), as_of, cause_event_id)


def on_sweep(
    state: CustomerLifecycle, now: datetime, rules: StageRules
) -> tuple[CustomerLifecycle, Transition | None]:
    """Let time pass until ``now``: silence, the end of the new window, won_back settling."""
    return _move(state, stage_for(state, now, rules), now, SWEEP_CAUSE)


def on_correction(
    state: CustomerLifecycle, at: datetime, cause_event_id: str, rules: StageRules
) -> tuple[CustomerLifecycle, Transition | None]:
    """Re-evaluate after the facts were corrected (an order cancelled, two customers merged).

    ``state`` already holds the corrected purchases; a customer left with none is a prospect.
    """
    return _move(state, stage_for(state, at, rules), at, cause_event_id)


def stage_for(state: CustomerLifecycle, now: datetime, rules: StageRules) -> StageDecision:
    """The stage the rules give ``state`` at ``now``, with no new event, and why.

    The customer's current stage matters only for hysteresis: a declining or loyal customer
    keeps the stage until the measure crosses the *leave* threshold. Applying the function to
    its own result gives the same stage (a fixed point).
    """
    silent = silence_days(state, now)
    if silent is None or state.first_purchase_at is None:
        return StageDecision(Stage.PROSPECT, lambda: "no purchase yet")
    since_first = (now - state.first_purchase_at) / _DAY
    if since_first < rules.new_days:
        return StageDecision(Stage.NEW, lambda: f"first purchase {since_first:.0f} days ago")

    declined = _decline(state, silent, rules)
    if declined is not None:
        return declined

    if state.stage is Stage.WON_BACK:
        settled_for = (now - state.stage_since) / _DAY
        if settled_for < rules.won_back_settling_days:
            return StageDecision(Stage.WON_BACK, lambda: f"won back {settled_for:.0f} days ago")
    loyal_reason = _loyalty(state, rules)
    if loyal_reason is not None:
        return StageDecision(Stage.LOYAL, loyal_reason)
    return StageDecision(Stage.ACTIVE, lambda: _active_reason(state, rules))


def _decline(state: CustomerLifecycle, silent: float, rules: StageRules) -> StageDecision | None:
    """The declining stage (at_risk, dormant, churned) the rules give, or None if not declining."""
    current = _DECLINE_LEVEL.get(state.stage, 0)
    by_silence = _silence_decline(state, silent, current, rules)
    by_churn = _churn_risk_decline(state, current, rules)
    # The deeper decline wins; on a tie the silence explains it (it is what a person can check).
    level, explain = by_silence if by_silence[0] >= by_churn[0] else by_churn
    if level == 0:
        return None
    return StageDecision(DECLINING_STAGES[level - 1], explain)


def _silence_decline(
    state: CustomerLifecycle, silent: float, current: int, rules: StageRules
) -> tuple[int, Callable[[], str]]:
    rhythm = state.expected_interpurchase_days
    if rhythm is not None and rhythm > 0 and state.order_count >= rules.min_orders_for_rhythm:
        ratio = silent / rhythm
        bands = (rules.at_risk_rhythm, rules.dormant_rhythm, rules.churned_rhythm)
        level = _level_with_hysteresis(ratio, bands, current)
        return (
            level,
            lambda: (
                f"silent {silent:.0f} days, {ratio:.1f}x the usual {rhythm:.0f} days"
                " between purchases"
            ),
        )
    # Silence in days only grows until a purchase, so the fall-backs need no leave threshold.
    starts = (rules.at_risk_from_days, rules.dormant_from_days, rules.churned_from_days)
    level = (silent >= starts[0]) + (silent >= starts[1]) + (silent >= starts[2])
    return (
        level,
        lambda: f"silent {silent:.0f} days (fixed fall-back: no purchase rhythm known yet)",
    )


def _level_with_hysteresis(measure: float, bands: tuple[Band, ...], current: int) -> int:
    """The level (0 none, n = nth band) for ``measure``, keeping ``current`` while it holds.

    Rising: the deepest band whose ``enter`` the measure exceeds. Falling: the current level is
    kept while the measure stays at or above its ``leave``; below it, the level drops to what
    the ``enter`` thresholds give, which is stable there because ``leave <= enter``.
    """
    entered = 0
    for band in bands:
        entered += measure > band.enter
    if entered >= current:
        return entered
    if measure >= bands[current - 1].leave:
        return current
    return entered


def _churn_risk_decline(
    state: CustomerLifecycle, current: int, rules: StageRules
) -> tuple[int, Callable[[], str]]:
    risk = state.churn_risk
    if risk is None:
        return 0, str
    band = rules.at_risk_churn_risk
    level = _level_with_hysteresis(risk, (band,), min(current, 1))
    return level, lambda: f"churn risk {risk:.2f} (at_risk above {band.enter:.2f})"


def _loyalty(state: CustomerLifecycle, rules: StageRules) -> Callable[[], str] | None:
    """Why the customer is loyal, or None. Entry is stricter than staying (hysteresis)."""
    risk = state.churn_risk
    tier = state.value_tier.value if state.value_tier is not None else None
    grade = state.grade.value if state.grade is not None else None
    valuable = tier in rules.loyal_tiers or grade in rules.loyal_grades
    if not valuable or state.order_count < rules.loyal_min_orders or risk is None:
        return None
    limit = (
        rules.loyal_exit_churn_risk
        if state.stage is Stage.LOYAL
        else rules.loyal_enter_max_churn_risk
    )
    if risk > limit:
        return None
    return lambda: (
        f"{state.order_count} orders, tier {tier or 'none'}, grade {grade or 'none'}, "
        f"churn risk {risk:.2f}"
    )


def _active_reason(state: CustomerLifecycle, rules: StageRules) -> str:
    if state.stage is Stage.LOYAL:
        risk = "unknown" if state.churn_risk is None else f"{state.churn_risk:.2f}"
        return (
            f"no longer loyal: churn risk {risk} (limit {rules.loyal_exit_churn_risk:.2f}), "
            f"tier {state.value_tier or 'none'}, grade {state.grade or 'none'}"
        )
    if state.stage is Stage.WON_BACK:
        return f"won back {rules.won_back_settling_days} or more days ago: settled"
    if state.stage in DECLINING_STAGES:
        return "no longer declining: silence and churn risk below their leave thresholds"
    return f"buying past the first {rules.new_days} days"


def _move(
    state: CustomerLifecycle, decision: StageDecision, at: datetime, cause: str
) -> tuple[CustomerLifecycle, Transition | None]:
    if decision.stage is state.stage:
        return state, None
    # A late event (an order placed before the customer was known here) moves the customer
    # now, not before the stage they are leaving began: history never runs backwards.
    at = max(at, state.stage_since)
    moved = _moved_copy(state, decision.stage, at)
    return moved, Transition(state.stage, decision.stage, at, cause, decision.reason)


def _moved_copy(state: CustomerLifecycle, stage: Stage, since: datetime) -> CustomerLifecycle:
    """``replace(state, stage=stage, stage_since=since)``, four times cheaper.

    ``dataclasses.replace`` re-runs ``__init__`` over every field; a sweep moves customers by
    the hundred thousand, and the class has no ``__post_init__`` or slots to bypass.
    """
    moved = object.__new__(CustomerLifecycle)
    moved.__dict__.update(state.__dict__, stage=stage, stage_since=since)
    return moved
