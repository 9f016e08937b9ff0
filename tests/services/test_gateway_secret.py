"""The backends answer only the gateway: the gateway-secret middleware."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from apigw.config import load_service_settings
from apigw.services.app import make_service_app
from middleware import SERVICE_MIDDLEWARES
from tests.support import DEMO_KEY, PROBLEM, TEST_SECRET

OLD_SECRET = TEST_SECRET + "-old"
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


async def _hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "gateway"})


@pytest.fixture
async def service(aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    settings = load_service_settings({"GATEWAY_SECRET": f"{TEST_SECRET},{OLD_SECRET}"})
    app = make_service_app(settings, SERVICE_MIDDLEWARES)
    app.router.add_get("/users/{user_id}", _hello)
    return await aiohttp_client(app)


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("x-gateway-secret", "")],
        [("x-gateway-secret", "wrong-secret-0123456789")],
        [("x-gateway-secret", TEST_SECRET[:-1])],
        [("x-gateway-secret", "sécret-non-ascii-0123456")],
        [("x-gateway-secret", TEST_SECRET), ("x-gateway-secret", TEST_SECRET)],
        [("x-api-key", DEMO_KEY)],
        [("x-api-key", TEST_SECRET)],
    ],
    ids=[
        "missing",
        "empty",
        "wrong",
        "prefix",
        "non-ascii",
        "duplicated",
        "client-key",
        "secret-in-key-header",
    ],
)
async def test_anyone_but_the_gateway_gets_403(
    service: TestClient[Any, Any], headers: list[tuple[str, str]]
) -> None:
    resp = await service.get("/users/1", headers=headers)
    assert resp.status == 403
    assert resp.content_type == PROBLEM
    body = await resp.json()
    assert body["request_id"] == resp.headers["X-Request-ID"]
    assert TEST_SECRET not in await resp.text()


@pytest.mark.parametrize("secret", [TEST_SECRET, OLD_SECRET], ids=["current", "previous"])
async def test_every_listed_secret_is_accepted_during_rotation(
    service: TestClient[Any, Any], secret: str
) -> None:
    resp = await service.get("/users/1", headers={"x-gateway-secret": secret})
    assert resp.status == 200


async def test_healthz_is_the_only_open_path(service: TestClient[Any, Any]) -> None:
    assert (await service.get("/healthz")).status == 200
    assert (await service.get("/healthz/../users/1")).status == 403
    assert (await service.get("/nope")).status == 403
