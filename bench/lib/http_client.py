"""The benchmark's HTTP client: connection limits that match the server's keep-alive, and the
cached failed import of sniffio that spares httpcore a sys.path search per request.
"""

from __future__ import annotations

import sys

import httpx

from lib.processes import SERVER_KEEP_ALIVE_SECONDS


def client_limits(connections: int) -> httpx.Limits:
    """Pool limits for a load-generating client: ``connections`` kept alive, none for too long.

    httpx also keeps an idle connection for 5 s, counted from when it has read a response,
    which is a little after uvicorn armed its own 5 s timer. Under load httpcore always picks
    the first idle connection, so the last ones in the pool are reused only in bursts, some
    just as uvicorn closes them: the request then meets a closed socket and fails with
    ``ReadError`` (a reset, anyio's ``BrokenResourceError``) or ``RemoteProtocolError``, and the
    server logs nothing because it never read the request. Letting the client give up idle
    connections well before the server does closes that race; it is the rule for any client
    or proxy in front of a keep-alive server.
    """
    return httpx.Limits(
        max_connections=connections,
        max_keepalive_connections=connections,
        keepalive_expiry=SERVER_KEEP_ALIVE_SECONDS / 2,
    )


def cache_missing_sniffio() -> bool:
    """Make a failed ``import sniffio`` cheap; return whether sniffio is missing.

    httpcore imports sniffio inside ``current_async_library()``, about twice per request. The
    anyio installed here (4.16) no longer pulls sniffio in, so every call searches sys.path
    again for a module that is not there (about 0.4 ms of CPU per call here), which makes the
    load generator, not the server, the bottleneck. A ``None`` entry in sys.modules makes the
    import fail at once; httpcore then assumes asyncio, which is what it would have found.
    """
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]
        return True
    return False
