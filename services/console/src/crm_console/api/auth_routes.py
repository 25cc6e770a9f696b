"""``/login`` and ``/logout``: a session starts with an API key that profile-service accepts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from crm_console.api.deps import SessionDep, read_form, render, set_session_cookie
from crm_console.clients import Service, ServiceClients, ServiceError
from crm_console.session import anonymous_session

router = APIRouter(tags=["session"])
MAX_KEY_LENGTH = 200


@router.get("/login", response_class=HTMLResponse, summary="The login form")
async def login_form(request: Request, session: SessionDep) -> HTMLResponse:
    """Asks for an API key with the read scope."""
    return render(request, "login.html", session)


@router.post("/login", summary="Log in with an API key")
async def login(request: Request, session: SessionDep) -> Response:
    """Checks the key against profile-service (a read); on success the session holds it."""
    form = await read_form(request, session)
    key = form.get("api_key", "").strip()
    error = None
    if not key:
        error = "Enter an API key."
    elif len(key) > MAX_KEY_LENGTH:
        error = f"An API key has at most {MAX_KEY_LENGTH} characters."
    else:
        clients = ServiceClients(request.app.state.http, request.app.state.service_urls, key)
        try:
            await clients.get(Service.PROFILE, "/v1/customers", {"limit": 1})
        except ServiceError as refused:
            error = _refusal(refused)
    if error is not None:
        return render(request, "login.html", session, {"error": error}, status_code=401)
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(request, response, session.with_key(key))
    return response


@router.post("/logout", summary="Log out")
async def logout(request: Request, session: SessionDep) -> Response:
    """Forgets the key: the cookie is replaced by an anonymous session."""
    await read_form(request, session)
    response = RedirectResponse("/login", status_code=303)
    set_session_cookie(request, response, anonymous_session())
    return response


def _refusal(error: ServiceError) -> str:
    if error.status == 401:
        return "This API key is not valid."
    if error.status == 403:
        return "This API key lacks the read scope."
    return f"The key could not be checked: {error.detail}"
