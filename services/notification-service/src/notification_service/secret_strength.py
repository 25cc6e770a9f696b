"""How strong a signing secret must be in production: long, and not guessable from its shape.

A secret that signs unsubscribe links or webhooks is an HMAC key: whoever guesses it can opt
any customer out or forge a webhook. Production refuses:

- a secret shorter than :data:`MIN_SECRET_BYTES` (32, the HMAC-SHA256 block's half and the
  length `secrets.token_urlsafe(32)` and `whsec_` secrets from 32 random bytes exceed);
- a secret whose bytes estimate to fewer than :data:`MIN_ESTIMATED_BITS` bits (the Shannon
  entropy of its byte frequencies times its length): repeated characters, a word typed
  several times, a short alphabet. The estimate cannot see that a passphrase is a famous one,
  but it refuses every secret made by hand from few symbols; a random one passes with margin
  (32 random bytes estimate to about 155 bits, `token_urlsafe(32)` to about 215).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Final

__all__ = ["MIN_ESTIMATED_BITS", "MIN_SECRET_BYTES", "estimated_bits", "weakness"]

MIN_SECRET_BYTES: Final = 32
MIN_ESTIMATED_BITS: Final = 128


def estimated_bits(secret: bytes) -> float:
    """The Shannon entropy of ``secret``'s byte frequencies times its length, in bits."""
    if not secret:
        return 0.0
    total = len(secret)
    per_byte = -sum((seen / total) * math.log2(seen / total) for seen in Counter(secret).values())
    return per_byte * total


def weakness(secret: bytes) -> str | None:
    """Why ``secret`` is too weak for production, or None when it is strong enough."""
    if len(secret) < MIN_SECRET_BYTES:
        return f"it is {len(secret)} bytes long; at least {MIN_SECRET_BYTES} are needed"
    bits = estimated_bits(secret)
    if bits < MIN_ESTIMATED_BITS:
        return (
            f"it looks made by hand (about {bits:.0f} bits of entropy, at least"
            f" {MIN_ESTIMATED_BITS} needed): generate a random one"
        )
    return None
