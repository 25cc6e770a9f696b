"""The stack's mail sink: started only when a service of the stack sends email."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from crm_devstack.loopback import ensure_port_is_free, loopback_host
from crm_devstack.mail_sink import DEVELOPMENT_SMTP_PORT, MailSink, MailSinkError
from crm_devstack.services import ServiceSpec
from crm_devstack.stack_errors import StackError
from crm_devstack.wiring import sends_mail
from crm_shared.testing import free_loopback_port

_logger = logging.getLogger("crm_devstack")


def start_mail_sink(
    specs: Sequence[ServiceSpec], *, data_dir: Path, host: str, free_port: bool
) -> MailSink | None:
    """Start a `MailSink` keeping mail under ``<data_dir>/mail`` if any of `specs` sends email.

    It listens on the loopback address the services are reached at (never wider than they
    are), on the development SMTP port or, with `free_port`, an unused one.
    """
    if not sends_mail([spec.name for spec in specs]):
        return None
    address = loopback_host(host)
    port = free_loopback_port() if free_port else DEVELOPMENT_SMTP_PORT
    ensure_port_is_free("the mail sink", address, port)
    sink = MailSink(directory=data_dir / "mail", host=address, port=port)
    _logger.info("starting the mail sink on %s:%d", address, port)
    try:
        sink.start()
    except MailSinkError as error:
        raise StackError(str(error)) from error
    return sink
