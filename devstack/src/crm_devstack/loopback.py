"""The local addresses the stack listens on: which to dial, and whether a port is free."""

from __future__ import annotations

import socket

from crm_devstack.stack_errors import StackError


def ensure_port_is_free(name: str, host: str, port: int) -> None:
    """Raise `StackError` when `name` could not listen on `host:port`."""
    # Checked up front: otherwise uvicorn fails to bind while an unrelated process (often an
    # earlier `make run`) answers /healthz on that port, and the stack looks healthy.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # Same option uvicorn sets, so a port in TIME_WAIT from the last run counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise StackError(
                f"{name} cannot listen on {host}:{port} ({error.strerror}); is another "
                "`make run` still running? Stop it, or free the port."
            ) from error


def loopback_host(host: str) -> str:
    """The address a client on this machine dials for a server bound to `host`."""
    if host in {"0.0.0.0", ""}:
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def client_host(host: str) -> str:
    """`loopback_host`, bracketed for a URL when it is an IPv6 address."""
    address = loopback_host(host)
    return f"[{address}]" if ":" in address else address
