"""Email over SMTP (aiosmtplib): a multipart/alternative message with one-click unsubscribe.

Each message carries:

- a plain-text part, and an HTML part when the template has one (``multipart/alternative``);
- ``List-Unsubscribe: <url>`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``
  (RFC 8058): mail clients show an unsubscribe button that POSTs to the link, and large
  mailbox providers require both headers from bulk senders;
- the link in the bodies too: a footer is added to a part whose template left it out;
- ``Message-ID: <notification id@sender domain>``, so every attempt of one notification has
  the same id and a receiving server that already took it can drop the duplicate;
- ``X-CRM-Notification-Id``, for tracing a message back from a mailbox.

Failures: a recipient refused with 5xx, or a message refused with 5xx, is permanent; 4xx
(greylisting, a full queue), a server down or slow, and a refused login or sender (our
configuration, fixable while the message waits) are transient.

(This module is ``notification_service.channels.email``; it shadows the standard library only
for code that puts this directory itself on ``sys.path``, which nothing does.)
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Final

import aiosmtplib

from crm_shared import redact
from notification_service.channels.base import (
    DeliveryError,
    OutgoingMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from notification_service.domain.templates import RenderedMessage

__all__ = ["NOTIFICATION_ID_HEADER", "SmtpChannel"]

NOTIFICATION_ID_HEADER: Final = "X-CRM-Notification-Id"

# Local part, one "@", a domain with a dot; whether the mailbox exists is the server's call.
# Headers may run to 998 characters on the wire (RFC 5322). The default 78 makes the email
# package encode a long unbroken header, the unsubscribe link, as an RFC 2047 word that mail
# clients then fail to recognise as a one-click unsubscribe.
_WIRE_POLICY: Final = email_policy.SMTP.clone(max_line_length=998)
_ADDRESS: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MESSAGE_ID_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
_BODY_END: Final = re.compile(r"</body\s*>", re.IGNORECASE)
_MAX_DETAIL_CHARS: Final = 200


class SmtpChannel:
    """Sends email through one SMTP server, one connection per message."""

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool = False,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """A channel through the SMTP server at ``host``:``port``.

        ``sender`` is the From header (``"CRM <crm@example.com>"``); ``use_tls`` connects over
        TLS, ``start_tls`` upgrades a plain connection and refuses a server that cannot;
        ``clock`` returns epoch seconds for the Date header.
        """
        if use_tls and start_tls:
            raise ValueError("use_tls and start_tls exclude each other")
        envelope_sender = parseaddr(sender)[1]
        if not _ADDRESS.fullmatch(envelope_sender):
            raise ValueError("the sender needs an email address, like 'CRM <crm@example.com>'")
        self._host = host
        self._port = port
        self._sender = sender
        self._envelope_sender = envelope_sender
        self._domain = envelope_sender.rpartition("@")[2]
        self._username = username
        self._password = password
        self._use_tls = use_tls
        self._start_tls = start_tls
        self._timeout = timeout
        self._clock = clock

    def compose(self, message: OutgoingMessage) -> EmailMessage:
        """The email for ``message``, as it will be sent (also what a preview may show)."""
        content = message.content
        if content.subject is None or content.text_body is None:
            raise PermanentDeliveryError(f"a {content.channel.value} message is not an email")
        if not _ADDRESS.fullmatch(message.recipient):
            raise PermanentDeliveryError("not an email address")
        email = EmailMessage()
        try:
            email["From"] = self._sender
            email["To"] = message.recipient
            email["Subject"] = content.subject
            email["Date"] = format_datetime(datetime.fromtimestamp(self._clock(), UTC))
            email["Message-ID"] = self._message_id(message.notification_id)
            email[NOTIFICATION_ID_HEADER] = message.notification_id
            if message.unsubscribe_url:
                email["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
                email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        except ValueError as error:
            # The email package refuses line breaks in headers: no header injection.
            raise PermanentDeliveryError(f"cannot build the email: {error}") from error
        text, html_body = _bodies_with_unsubscribe_link(content, message.unsubscribe_url)
        email.set_content(text)
        if html_body is not None:
            email.add_alternative(html_body, subtype="html")
        return email

    async def send(self, message: OutgoingMessage) -> str:
        """Hand the email to the SMTP server; its Message-ID is the receipt."""
        email = self.compose(message)
        try:
            await aiosmtplib.send(
                email.as_bytes(policy=_WIRE_POLICY),
                sender=self._envelope_sender,
                recipients=[message.recipient],
                hostname=self._host,
                port=self._port,
                username=self._username,
                password=self._password,
                use_tls=self._use_tls,
                start_tls=self._start_tls,
                timeout=self._timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            raise _classify(error) from error
        return str(email["Message-ID"])

    def _message_id(self, notification_id: str) -> str:
        local = _MESSAGE_ID_UNSAFE.sub("-", notification_id)
        if not local:
            return make_msgid(domain=self._domain)
        return f"<{local}@{self._domain}>"


def _bodies_with_unsubscribe_link(
    content: RenderedMessage, url: str | None
) -> tuple[str, str | None]:
    text = content.text_body or ""
    html_body = content.html_body
    if not url:
        return text, html_body
    if url not in text:
        # "-- " opens a signature: mail clients leave it out of quoted replies.
        text = f"{text.rstrip()}\n\n-- \nUnsubscribe: {url}\n"
    escaped = html.escape(url)
    if html_body is not None and url not in html_body and escaped not in html_body:
        footer = f'<p style="font-size:12px;color:#666"><a href="{escaped}">Unsubscribe</a></p>'
        ends = list(_BODY_END.finditer(html_body))
        if ends:
            at = ends[-1].start()
            html_body = f"{html_body[:at]}{footer}\n{html_body[at:]}"
        else:
            html_body = f"{html_body}\n{footer}"
    return text, html_body


def _classify(error: Exception) -> DeliveryError:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        refusal = error.recipients[0]
        reason = f"SMTP {refusal.code} recipient refused: {_detail(refusal.message)}"
        if refusal.code >= 500:
            return PermanentDeliveryError(reason, code=refusal.code)
        return TransientDeliveryError(reason, code=refusal.code)
    if isinstance(error, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return TransientDeliveryError(f"SMTP server unreachable ({type(error).__name__})")
    if isinstance(error, TimeoutError):
        return TransientDeliveryError(f"SMTP server timed out ({type(error).__name__})")
    configuration = (
        aiosmtplib.SMTPAuthenticationError,
        aiosmtplib.SMTPSenderRefused,
        aiosmtplib.SMTPHeloError,
    )
    if isinstance(error, aiosmtplib.SMTPResponseException):
        reason = f"SMTP {error.code} {type(error).__name__}: {_detail(error.message)}"
        if error.code >= 500 and not isinstance(error, configuration):
            return PermanentDeliveryError(reason, code=error.code)
        return TransientDeliveryError(reason, code=error.code)
    return TransientDeliveryError(f"SMTP failure ({type(error).__name__}: {_detail(str(error))})")


def _detail(server_text: str) -> str:
    # Servers echo the address they refuse ("<ada@example.com>: User unknown"): mask it.
    return redact(server_text[:_MAX_DETAIL_CHARS]).strip()
