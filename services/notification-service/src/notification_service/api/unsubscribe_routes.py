"""``/v1/unsubscribe/{token}``: the signed link in every message, for people and mail clients.

GET shows a confirmation page (link scanners and previews fetch GET, so it changes nothing);
POST records the opt-out: from the page's button, or from a mail client's one-click
unsubscribe (RFC 8058, ``List-Unsubscribe=One-Click``). No API key: the token is the proof.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from crm_shared import SessionDep, problem_responses, utc_now
from crm_shared.errors import must_exist
from notification_service.api import SettingsDep
from notification_service.domain.signing import UnsubscribeRequest, read_unsubscribe_token
from notification_service.settings import NotificationSettings
from notification_service.workflows.opt_outs import record_opt_out

router = APIRouter(prefix="/v1/unsubscribe", tags=["unsubscribe"])
_INVALID_LINK = problem_responses({404: "The link is not valid (not signed by this service)"})

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width"><title>{title}</title></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto">{body}</body></html>"""


def _request_of(settings: NotificationSettings, token: str) -> UnsubscribeRequest:
    return must_exist(
        read_unsubscribe_token(settings.unsubscribe_secret_bytes(), token),
        "This unsubscribe link is not valid.",
    )


def _what(found: UnsubscribeRequest) -> str:
    kind = "offers and news" if found.purpose.value == "marketing" else "service messages"
    return f"{kind} by {found.channel.value.replace('_', '-')}"


@router.get(
    "/{token}",
    response_class=HTMLResponse,
    summary="Confirm unsubscribing",
    responses=_INVALID_LINK,
)
async def confirm(token: str, settings: SettingsDep) -> HTMLResponse:
    """A page with one button; nothing changes until it is pressed."""
    found = _request_of(settings, token)
    body = (
        f"<h1>Unsubscribe</h1><p>Stop receiving {escape(_what(found))}?</p>"
        f'<form method="post"><button type="submit">Unsubscribe</button></form>'
    )
    return HTMLResponse(_PAGE.format(title="Unsubscribe", body=body))


@router.post(
    "/{token}", response_class=HTMLResponse, summary="Unsubscribe", responses=_INVALID_LINK
)
async def unsubscribe(token: str, settings: SettingsDep, session: SessionDep) -> HTMLResponse:
    """Records the opt-out here at once and with profile-service, so every service sees it.
    Following the link again changes nothing more."""
    found = _request_of(settings, token)
    await record_opt_out(session, found, utc_now())
    body = f"<h1>Done</h1><p>You will no longer receive {escape(_what(found))}.</p>"
    return HTMLResponse(_PAGE.format(title="Unsubscribed", body=body))
