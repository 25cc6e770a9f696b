"""What a request's framing says about its body before any of it is read.

The middlewares that watch request bodies (the NUL guard, the body limit) wrap ``receive`` and
``send`` for every request they scan. Most requests are GETs without a body, where there is
nothing to scan or count: for those, the framing alone settles it and the wrappers are skipped.
"""

from __future__ import annotations

from starlette.types import Scope

_FRAMED_BY_HEADERS = frozenset({"1.0", "1.1"})


def fixed_body_length(scope: Scope) -> int | None:
    """The exact length of the request's body when its framing fixes it, else None.

    In HTTP/1.x (RFC 9112, section 6.3) a request with neither Transfer-Encoding nor
    Content-Length has no body, and one with a single valid Content-Length and no
    Transfer-Encoding has exactly that many bytes: the server reads that many and no more.
    Anything else (chunked, a repeated or malformed length, HTTP/2 and later, which frame a
    body without either header) is None: the body has to be watched as it arrives.
    """
    if scope.get("http_version") not in _FRAMED_BY_HEADERS:
        return None
    length: int | None = None
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return None
        if name == b"content-length":
            if length is not None or not value.isdigit():
                return None
            length = int(value)
    return 0 if length is None else length
