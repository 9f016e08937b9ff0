"""Swagger UI at /docs: no key needed, offline, documents the API with the x-api-key scheme."""

from __future__ import annotations

import inspect
from typing import Any

import fastjsonschema
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp_swagger3 import swagger as swagger_module
from openapi_spec_validator import validate

from apigw.openapi.swagger import setup_docs
from tests.support.processes import fresh_interpreter


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


def test_docs_set_up_without_compiling_the_meta_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    # setup_docs swaps aiohttp-swagger3's meta-schema compile for a no-op (45 MB per process).
    # It relies on aiohttp-swagger3 calling `fastjsonschema.compile` through its module global:
    # if an upgrade changes that, this fails instead of the memory quietly coming back.
    assert "fastjsonschema.compile(" in inspect.getsource(swagger_module.Swagger.__init__)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the OpenAPI meta-schema was compiled")

    monkeypatch.setattr(fastjsonschema, "compile", refuse)
    spec = setup_docs(web.Application(), "test")
    assert spec["paths"] == {}
    assert fastjsonschema.compile is refuse


def test_gateway_imports_aiohttp_swagger3_only_when_the_page_is_first_viewed() -> None:
    # Every worker would otherwise carry ~2 MB of aiohttp-swagger3, attrs and fastjsonschema
    # for a page most of them never serve. A fresh interpreter: this one imported it already.
    script = """
import asyncio, sys
from aiohttp.test_utils import TestClient, TestServer
from apigw.config import parse_gateway_settings
from gateway import create_app

async def main():
    settings = parse_gateway_settings(
        {"routes": [{"prefix": "/users", "upstreams": ["http://127.0.0.1:9"]}]},
        {"GATEWAY_SECRET": "a-test-secret-of-enough-length"},
    )
    async with TestClient(TestServer(await create_app(settings))) as client:
        before = "aiohttp_swagger3" in sys.modules
        page = await client.get("/docs/")
        asset = await client.get("/docs/swagger_ui_static/swagger-ui.css")
        print(before, "aiohttp_swagger3" in sys.modules, page.status, asset.status)

asyncio.run(main())
"""
    done = fresh_interpreter(script)
    assert done.stdout.split() == ["False", "True", "200", "200"], done.stderr
