"""Hold-out groups: which customers a rule deliberately leaves alone, so its effect can be measured.

Every playbook rule holds back a share of the customers it fires for (its ``holdout_share``):
their messages are suppressed with reason ``holdout`` and they form the control group the
effect report compares the treated customers with.

Decisions recorded here:

- The group is a pure function of (rule id, customer id): the first 64 bits of the SHA-256 of
  both, read as a number ``u`` in [0, 1); the customer is held out when ``u < share``. So a
  customer's group never flips between triggers, replicas or restarts, and needs no storage.
  Raising a rule's share only moves customers from treated to held out (never back), lowering
  it only the other way; other rules draw independently (the rule id is in the hash).
- The defaults follow the template category: 10% of marketing messages, none of service
  messages (a care message or an account-manager task is not an experiment unless someone
  says so). The share is bounded to [0, 0.5]: a control group larger than the treated one
  would make the rule mostly not run.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

from crm_contracts import Category

__all__ = [
    "DEFAULT_HOLDOUT_SHARE",
    "HOLDOUT",
    "MAX_HOLDOUT_SHARE",
    "TREATMENT",
    "Group",
    "assignment_point",
    "default_holdout_share",
    "group_of",
    "is_held_out",
]

Group = Literal["treatment", "holdout"]
TREATMENT: Final[Group] = "treatment"
HOLDOUT: Final[Group] = "holdout"
MAX_HOLDOUT_SHARE: Final = 0.5
DEFAULT_HOLDOUT_SHARE: Final = {Category.MARKETING: 0.10, Category.SERVICE: 0.0}
_SEPARATOR: Final = b"\x1f"  # a byte no id contains: ("a", "bc") and ("ab", "c") stay apart


def default_holdout_share(category: Category) -> float:
    """The share a rule of ``category`` holds back when its document names none."""
    return DEFAULT_HOLDOUT_SHARE[category]


def assignment_point(rule_id: str, customer_id: str) -> float:
    """The customer's stable place in [0, 1) for this rule (uniform over customers)."""
    digest = hashlib.sha256(
        rule_id.encode("utf-8") + _SEPARATOR + customer_id.encode("utf-8")
    ).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def is_held_out(rule_id: str, customer_id: str, share: float) -> bool:
    """Whether the rule leaves this customer alone as part of its control group."""
    if not 0.0 <= share <= MAX_HOLDOUT_SHARE:
        raise ValueError(f"holdout share must be between 0 and {MAX_HOLDOUT_SHARE}, got {share}")
    return assignment_point(rule_id, customer_id) < share


def group_of(rule_id: str, customer_id: str, share: float) -> Group:
    """``"holdout"`` or ``"treatment"``: the group the rule puts the customer in."""
    return HOLDOUT if is_held_out(rule_id, customer_id, share) else TREATMENT
