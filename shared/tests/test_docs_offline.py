"""`/docs` and `/redoc` work on a closed network: every asset comes from the service itself."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from crm_shared import ServiceMetrics, ServiceSettings, create_service_app

# src="...", href="...", and the OpenAPI document: Swagger UI's url: '...', ReDoc's spec-url.
_REFERENCE = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")
_EXPECTED_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "json"}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    settings = ServiceSettings(environment="test", kafka_enabled=False)
    app = create_service_app(
        settings=settings,
        metrics=ServiceMetrics(),
        title="Docs test",
        description="A service.",
        version="1",
        lifespan=None,  # type: ignore[arg-type]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        yield http


def _references(html: str) -> list[str]:
    return [src or url for src, url in _REFERENCE.findall(html)]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_page_loads_nothing_from_another_host(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    # No absolute or scheme-relative URL anywhere in the page, not only in src and href.
    assert re.findall(r"(?:https?:)?//", html) == []
    references = _references(html)
    assert "/openapi.json" in references
    assert len(references) >= 3  # the script, the favicon, the document (and a stylesheet)
    for reference in references:
        assert reference.startswith("/"), reference
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        suffix = reference[reference.rfind(".") :]
        assert _EXPECTED_TYPES[suffix] in asset.headers["content-type"], reference
        assert asset.content, reference


async def test_docs_page_runs_swagger_ui_with_the_online_validator_off(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/docs")).text
    # Swagger UI's default validator is a public web service; on a closed network it fails.
    assert '"validatorUrl": null' in html
    script = next(ref for ref in _references(html) if ref.endswith("swagger-ui-bundle.js"))
    bundle = (await client.get(script)).text
    assert "SwaggerUIBundle" in bundle


async def test_docs_assets_carry_their_licenses(client: httpx.AsyncClient) -> None:
    for name in ("swagger-ui.LICENSE", "swagger-ui.NOTICE", "redoc.LICENSE"):
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 200, name
        assert "License" in response.text or "Copyright" in response.text, name


async def test_docs_assets_need_no_api_key_and_stay_in_their_folder(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/docs/assets/swagger-ui.css")).status_code == 200
    assert (await client.get("/docs/assets/../_settings.py")).status_code == 404
    assert (await client.get("/docs/assets/%2e%2e/_settings.py")).status_code == 404
