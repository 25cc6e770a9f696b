"""What every page needs: the session, the operator's service clients, forms and rendering."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import parse_qs

import httpx
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from crm_console.clients import Service, ServiceClients
from crm_console.session import COOKIE_NAME, Session, SessionCodec, anonymous_session
from crm_console.settings import ConsoleSettings

# Template sources may be up to 100,000 characters per part; a form holds a few of them.
MAX_FORM_BYTES = 512 * 1024
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """The page needs a logged-in session; the handler sends the browser to /login."""


class FormRefused(Exception):
    """A form without a valid CSRF token, or larger than the console accepts."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def current_session(request: Request) -> Session:
    """The session in the cookie, or a fresh anonymous one."""
    codec: SessionCodec = request.app.state.session_codec
    found = codec.decode(request.cookies.get(COOKIE_NAME))
    return found or anonymous_session()


SessionDep = Annotated[Session, Depends(current_session)]


def operator_session(session: SessionDep) -> Session:
    """The session of a logged-in operator; anyone else is sent to the login page."""
    if not session.logged_in:
        raise LoginRequired
    return session


OperatorSession = Annotated[Session, Depends(operator_session)]


def operator_clients(request: Request, session: OperatorSession) -> ServiceClients:
    """The services, called with the operator's own key (the services decide what it may do)."""
    http: httpx.AsyncClient = request.app.state.http
    urls: Mapping[Service, str] = request.app.state.service_urls
    assert session.api_key is not None  # operator_session guarantees it
    return ServiceClients(http, urls, session.api_key)


ClientsDep = Annotated[ServiceClients, Depends(operator_clients)]


async def read_form(request: Request, session: Session) -> dict[str, str]:
    """The URL-encoded form of a POST, its CSRF token checked; one value per field."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise FormRefused(413, f"The form is larger than {MAX_FORM_BYTES // 1024} KiB.")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as error:
        raise FormRefused(400, f"The form could not be read: {error}") from error
    form = {name: values[-1] for name, values in fields.items()}
    if not session.checks_csrf(form.get(CSRF_FIELD)):
        raise FormRefused(403, "The form has expired or did not come from this console.")
    return form


def render(
    request: Request,
    template: str,
    session: Session,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """The page, with the session cookie (re)set: HttpOnly, SameSite=Strict, Secure."""
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(
        request,
        template,
        {"session": session, "csrf_token": session.csrf_token, **(context or {})},
        status_code=status_code,
    )
    set_session_cookie(request, response, session)
    return response


def set_session_cookie(request: Request, response: Any, session: Session) -> None:
    """Write `session` into the response's cookie."""
    codec: SessionCodec = request.app.state.session_codec
    settings: ConsoleSettings = request.app.state.settings
    response.set_cookie(
        COOKIE_NAME,
        codec.encode(session),
        max_age=settings.session_max_age_seconds,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        path="/",
    )
