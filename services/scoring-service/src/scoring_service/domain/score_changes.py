"""Whether a re-score says something new, from a compact state stored with each score.

`changed_beyond_tolerance` compares two whole `score.updated` documents. Re-scoring a million
customers that way meant reading and decoding every stored payload (~2.3 KB of JSON each)
only to find most of them unchanged. Each score row instead keeps its :class:`ScoreState`:
a digest of every field compared exactly, and the figures compared within a tolerance. The
tests prove `changed_since` agrees with `changed_beyond_tolerance` on any pair of documents.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from typing import Any

import orjson

from scoring_service.domain.scoring import _IGNORED, _PROBABILITIES, _QUANTITIES

# The figures compared within a tolerance, in the order a state keeps them.
TOLERATED = (*_PROBABILITIES, *_QUANTITIES)
# The document's fields the digest leaves out: the tolerated figures, as-of and model version.
NOT_DIGESTED = frozenset(_IGNORED)
_HEALTH = TOLERATED.index("health_index")
_FIRST_QUANTITY = len(_PROBABILITIES)

Figures = tuple[float | None, ...]


@dataclass(frozen=True)
class ScoreState:
    """What a comparison needs of a score: the digest of its exactly compared fields and its
    tolerated figures."""

    digest: bytes
    figures: Figures

    def packed(self) -> bytes:
        """The state as 72 bytes: the digest, then each figure as a float64 (NaN: none; a
        figure is never NaN, score documents publish a non-finite figure as null)."""
        return self.digest + _FIGURES.pack(*(math.nan if f is None else f for f in self.figures))

    @classmethod
    def unpacked(cls, packed: bytes) -> ScoreState:
        """The state `packed` holds."""
        figures = _FIGURES.unpack_from(packed, _DIGEST_SIZE)
        return cls(packed[:_DIGEST_SIZE], tuple(None if f != f else f for f in figures))


_DIGEST_SIZE = 16
_FIGURES = struct.Struct(f"<{len(TOLERATED)}d")
PACKED_SIZE = _DIGEST_SIZE + _FIGURES.size


def score_state(document: dict[str, Any]) -> ScoreState:
    """The state of a `score.updated` document (as `score_documents` builds it)."""
    exact = {k: v for k, v in document.items() if k not in NOT_DIGESTED}
    # Equal digests only for equal JSON texts, i.e. equal values (a 128-bit collision aside);
    # keys sorted, so that equal dicts give equal texts whatever their order. Another
    # encoder's text for equal values gives another digest: one extra publish, never a change
    # left unpublished.
    text = orjson.dumps(exact, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    return state_of(text, tuple(document.get(name) for name in TOLERATED))


def state_of(exact_json: bytes, figures: Figures) -> ScoreState:
    """The state of a document given as the orjson text of its exactly compared fields (keys
    sorted, as `score_state` writes it) and its figures in the order of `TOLERATED`."""
    return ScoreState(hashlib.blake2b(exact_json, digest_size=_DIGEST_SIZE).digest(), figures)


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
