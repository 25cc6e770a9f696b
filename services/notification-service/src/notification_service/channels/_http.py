"""One POST to an HTTP provider (SMS gateway, webhook receiver), its failures classified.

Status classes: 2xx delivered; 408, 429 and 5xx transient (the provider is slow, busy or
broken, and says so); every other status permanent, 3xx included (redirects are not followed:
a moved endpoint is a configuration to fix, and following it would send signed data to
wherever the redirect points). Network failures are transient; a URL that cannot be sent to
at all is permanent.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Final, Self

import httpx

from crm_shared import redact
from notification_service.channels.base import PermanentDeliveryError, TransientDeliveryError

__all__ = ["HttpAdapter", "receipt_from"]

_TRANSIENT_STATUSES: Final = frozenset({408, 429})
# Enough of an error body to say what the provider objected to, without storing a page.
_MAX_DETAIL_CHARS: Final = 200


class HttpAdapter:
    """Base of the HTTP adapters: a client shared or owned, and a classified POST."""

    def __init__(self, *, timeout: float, client: httpx.AsyncClient | None) -> None:
        self._timeout = timeout
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()

    async def aclose(self) -> None:
        """Close the HTTP client if this adapter created it (a shared one is its owner's)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _post(
        self,
        url: str,
        *,
        content: bytes,
        headers: Mapping[str, str],
        provider: str,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """POST ``content``; the 2xx response, or a delivery error saying what ``provider`` did."""
        try:
            response = await self._client.post(
                url,
                content=content,
                headers=dict(headers),
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
                follow_redirects=False,
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as error:
            raise PermanentDeliveryError(f"{provider}: cannot send to this URL: {error}") from error
        except httpx.TimeoutException as error:
            raise TransientDeliveryError(
                f"{provider}: timed out ({type(error).__name__})"
            ) from error
        except httpx.TransportError as error:
            raise TransientDeliveryError(
                f"{provider}: unreachable ({type(error).__name__})"
            ) from error
        _raise_for_status(response, provider)
        return response


def _raise_for_status(response: httpx.Response, provider: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"{provider}: HTTP {status}"
    detail = redact(response.text[:_MAX_DETAIL_CHARS]).strip()
    if detail:
        reason = f"{reason}: {detail}"
    if status in _TRANSIENT_STATUSES or status >= 500:
        retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        raise TransientDeliveryError(reason, code=status, retry_after=retry_after)
    raise PermanentDeliveryError(reason, code=status)


def _retry_after_seconds(value: str | None) -> float | None:
    # Only the delta-seconds form: the HTTP-date form would need a clock, and providers
    # asking for a pause send seconds in practice.
    seconds = (value or "").strip()
    if not (seconds.isascii() and seconds.isdigit()):
        return None
    return float(seconds)


def receipt_from(response: httpx.Response, fallback: str) -> str:
    """The provider's id from a JSON ``{"id": ...}`` answer, else ``fallback``."""
    try:
        document = response.json()
    except ValueError:
        return fallback
    if isinstance(document, dict) and isinstance(document.get("id"), str | int):
        return str(document["id"])
    return fallback
