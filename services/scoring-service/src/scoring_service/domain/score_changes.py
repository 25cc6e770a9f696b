"""Whether a re-score says something new, from a compact state stored with each score.

`changed_beyond_tolerance` compares two whole `score.updated` documents. Re-scoring a million
customers that way meant reading and decoding every stored payload (~2.3 KB of JSON each)
only to find most of them unchanged. Each score row instead keeps its :class:`ScoreState`:
a digest of every field compared exactly, and the figures compared within a tolerance. The
tests prove `changed_since` agrees with `changed_beyond_tolerance` on any pair of documents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from scoring_service.domain.scoring import _IGNORED, _PROBABILITIES, _QUANTITIES

# The figures compared within a tolerance, in the order a state keeps them.
TOLERATED = (*_PROBABILITIES, *_QUANTITIES)
_HEALTH = TOLERATED.index("health_index")
_FIRST_QUANTITY = len(_PROBABILITIES)

Figures = tuple[float | None, ...]


@dataclass(frozen=True)
class ScoreState:
    """What a comparison needs of a score: the digest of its exactly compared fields and its
    tolerated figures."""

    digest: bytes
    figures: Figures


def score_state(document: dict[str, Any]) -> ScoreState:
    """The state of a `score.updated` document (as `score_documents` builds it)."""
    exact = {k: v for k, v in document.items() if k not in _IGNORED}
    # Equal digests only for equal JSON texts, i.e. equal values (a 128-bit collision aside);
    # keys sorted, so that equal dicts give equal texts whatever their order. Another
    # encoder's text for equal values gives another digest: one extra publish, never a change
    # left unpublished.
    text = orjson.dumps(exact, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.blake2b(text, digest_size=16).digest()
    return ScoreState(digest, tuple(document.get(name) for name in TOLERATED))


def changed_since(previous: ScoreState | None, current: ScoreState, tolerance: float) -> bool:
    """Whether `current` says something new against `previous` (None: a first score), by the
    rules of `changed_beyond_tolerance`."""
    if previous is None:
        return True
    return previous.digest != current.digest or figures_moved(
        previous.figures, current.figures, tolerance
    )


def figures_moved(before: Figures, after: Figures, tolerance: float) -> bool:
    """Whether a probability moved more than `tolerance`, a quantity more than `tolerance`
    relative to its previous value (at least 1), or health more than `tolerance` x 100 points."""
    for i, (old, new) in enumerate(zip(before, after, strict=True)):
        if i == _HEALTH:
            scale = 100.0
        elif i >= _FIRST_QUANTITY:
            scale = max(1.0, abs(old or 0.0))
        else:
            scale = 1.0
        if old is None or new is None:
            if old is not new:
                return True
        elif abs(new - old) > tolerance * scale:
            return True
    return False


def figures_of(values: Sequence[Any] | None) -> Figures | None:
    """Stored figures (a JSON list) back as a tuple; None when the row has none."""
    return None if values is None else tuple(values)
