"""A local SMTP server for ``make run``: it keeps the mail notification-service sends.

Nothing leaves the machine. Every message is saved, exactly as sent, as an ``.eml`` file (any
mail client opens one) and announced by one log line with its sender, recipients and subject.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from crm_shared.testing import StartedInWith

DEVELOPMENT_SMTP_PORT = 1025  # notification-service's default NOTIFICATION_SMTP_PORT

_logger = logging.getLogger("crm_devstack.mail")


class MailSinkError(RuntimeError):
    """The mail sink could not start; the message says why."""


class MailSink(StartedInWith):
    """An SMTP server on ``host:port`` that saves each message it accepts under `directory`.

    It accepts any sender and recipient, without login or TLS: it is for a development
    machine's loopback address only. It runs its own event loop in a thread, so the launcher
    (plain blocking code) can start and stop it like the other parts of the stack.
    """

    def __init__(self, *, directory: Path, host: str, port: int) -> None:
        """Prepare the sink; nothing listens until `start()` (or ``with``)."""
        self._directory = directory
        self._host = host
        self._port = port
        self._controller: Controller | None = None

    @property
    def host(self) -> str:
        """The address the sink listens on, as an SMTP client dials it."""
        return self._host

    @property
    def port(self) -> int:
        """The sink's SMTP port."""
        return self._port

    @property
    def directory(self) -> Path:
        """The folder the ``.eml`` files go to."""
        return self._directory

    def messages(self) -> list[Path]:
        """The saved messages, oldest first (their names start with the time of arrival)."""
        return sorted(self._directory.glob("*.eml"))

    def start(self) -> None:
        """Listen, and return once the server answers."""
        if self._controller is not None:
            raise MailSinkError("the mail sink is already started")
        self._directory.mkdir(parents=True, exist_ok=True)
        controller = Controller(
            _SaveEachMessage(self._directory),
            hostname=self._host,
            port=self._port,
            # Addresses with non-ASCII characters are allowed in customer data, so in mail too.
            enable_SMTPUTF8=True,
        )
        try:
            controller.start()
        except Exception as error:  # aiosmtpd raises bind errors and its own timeouts alike
            with contextlib.suppress(Exception):
                controller.stop(no_assert=True)  # its thread, if it got that far
            raise MailSinkError(
                f"the mail sink did not start on {self._host}:{self._port}: {error}"
            ) from error
        self._controller = controller

    def stop(self) -> None:
        """Stop listening; safe to call more than once and when never started."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()


class _SaveEachMessage:
    """aiosmtpd handler: write the DATA of each accepted message to its own file."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        path = self._directory / f"{datetime.now(UTC):%Y%m%d-%H%M%S-%f}-{uuid.uuid4().hex[:8]}.eml"
        # Written beside, then renamed: whoever watches the folder never opens half a message.
        partial = path.with_suffix(".part")
        partial.write_bytes(content)
        os.replace(partial, path)
        headers = BytesHeaderParser(policy=policy.default).parsebytes(content)
        # Addresses in a log line: fine for this development console (its whole point is to
        # show who got what), never in the services' own logs.
        _logger.info(
            "mail from %s to %s: %r -> %s",
            envelope.mail_from,
            ", ".join(envelope.rcpt_tos),
            str(headers.get("Subject", "")),
            path.name,
        )
        return "250 Message accepted for delivery"
