"""The one error path: an unexpected exception is a 500 problem+json, logged without its text."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from apigw.config import load_service_settings
from apigw.services.app import make_service_app
from middleware import SERVICE_MIDDLEWARES
from tests.support import PROBLEM, TEST_SECRET


async def _explode(request: web.Request) -> web.Response:
    # An exception whose message quotes a request header, as aiohttp's own errors can.
    raise RuntimeError(f"failed with x-gateway-secret: {request.headers['x-gateway-secret']}")


async def test_unexpected_error_is_500_problem_and_logged_without_its_message(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_service_app(
        load_service_settings({"GATEWAY_SECRET": TEST_SECRET}), SERVICE_MIDDLEWARES
    )
    app.router.add_get("/boom", _explode)
    client = await aiohttp_client(app)
    caplog.set_level(logging.DEBUG)
    resp = await client.get("/boom", headers={"x-gateway-secret": TEST_SECRET})
    assert resp.status == 500
    assert resp.content_type == PROBLEM
    body = await resp.json()
    assert body["request_id"] == resp.headers["X-Request-ID"]
    assert TEST_SECRET not in await resp.text()
    (record,) = [r for r in caplog.records if r.name == "apigw.errors"]
    message = record.getMessage()
    assert "RuntimeError" in message
    assert body["request_id"] in message
    assert TEST_SECRET not in message
    assert record.exc_info is None
