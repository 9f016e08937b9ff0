"""Swagger UI at /docs: no key needed, offline, documents the API with the x-api-key scheme."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate


async def test_docs_redirects_and_serves_the_bundled_ui(gateway: TestClient[Any, Any]) -> None:
    resp = await gateway.get("/docs", allow_redirects=False)
    assert resp.status in (301, 302)
    assert resp.headers["Location"] == "/docs/"
    page = await gateway.get("/docs/")
    assert page.status == 200
    html = await page.text()
    assert '"validatorUrl": null' in html
    assert "https://" not in html.split("<body", 1)[1].split("validatorUrl", 1)[0]
    asset = await gateway.get("/docs/swagger_ui_static/swagger-ui-bundle.js")
    assert asset.status == 200


async def test_document_describes_the_api_and_the_key_scheme(
    gateway: TestClient[Any, Any],
) -> None:
    resp = await gateway.get("/docs/swagger.json")
    assert resp.status == 200
    spec = await resp.json()
    validate(spec)
    assert spec["openapi"].startswith("3.0")
    # Paths come from the backends' own documents (test_docs_gateway.py); the echo
    # upstream has none, so the page says what it is waiting for.
    assert spec["paths"] == {}
    assert (
        "Still waiting for the API description of `/users`, `/orders`"
        in (spec["info"]["description"])
    )
    schemes = spec["components"]["securitySchemes"]
    assert {"type": "apiKey", "in": "header", "name": "x-api-key"} in schemes.values()
    assert spec["security"]
