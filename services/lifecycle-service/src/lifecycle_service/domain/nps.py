"""Net Promoter Score: promoters minus detractors, as a share of everyone who answered.

Answers 9-10 are promoters, 7-8 passives, 0-6 detractors (crm_contracts.nps_group);
NPS = 100 * (promoters - detractors) / answers, from -100 to 100, None without answers.
Counts are kept next to the score: an NPS of 100 from two answers is not one from two thousand.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from crm_contracts import nps_group

__all__ = ["NpsTally", "tally"]


@dataclass(frozen=True)
class NpsTally:
    """Answers of one group of customers, by NPS group, and the score they give."""

    promoters: int = 0
    passives: int = 0
    detractors: int = 0

    @property
    def answers(self) -> int:
        """Every answer counted."""
        return self.promoters + self.passives + self.detractors

    @property
    def nps(self) -> float | None:
        """100 * (promoters - detractors) / answers, rounded to 0.1; None without answers."""
        if not self.answers:
            return None
        return round(100.0 * (self.promoters - self.detractors) / self.answers, 1)

    def plus(self, other: NpsTally) -> NpsTally:
        """Both tallies together."""
        return NpsTally(
            self.promoters + other.promoters,
            self.passives + other.passives,
            self.detractors + other.detractors,
        )


def tally(counts: Iterable[tuple[int, int]]) -> NpsTally:
    """The tally of ``(score, answers with that score)`` pairs (scores 0-10)."""
    groups = {"promoter": 0, "passive": 0, "detractor": 0}
    for score, answers in counts:
        groups[nps_group(score)] += answers
    return NpsTally(groups["promoter"], groups["passive"], groups["detractor"])
