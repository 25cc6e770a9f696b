"""``/docs`` (Swagger UI) and ``/redoc`` served from the package instead of a CDN.

FastAPI's own pages load their scripts from jsDelivr and their favicon from fastapi's site, so
on a closed network they stay blank. The assets are vendored in ``_docs_assets`` (versions and
licences in its VENDORED.md) and mounted under ``/docs/assets``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_VERSION = "5.36.0"
REDOC_VERSION = "2.5.4"
ASSETS_PATH = "/docs/assets"
_ASSETS = Path(str(files("crm_shared") / "_docs_assets"))


def install_local_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` with the vendored assets; build `app` with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not registered."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    app.mount(ASSETS_PATH, StaticFiles(directory=_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            # The default validator is a public web service: unreachable on a closed network.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )
