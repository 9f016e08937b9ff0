"""Settings and config documents for the real apps, and the types of their test clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from apigw.config import GatewaySettings, ServiceSettings, load_service_settings
from apigw.config import parse_gateway_settings as parse
from apigw.config.consumers import digest_of
from tests.support import DEMO_KEY, OTHER_KEY, PROBLEM, TEST_SECRET

Client = TestClient[web.Request, web.Application]
GatewayFactory = Callable[[GatewaySettings], Awaitable[Client]]
ServiceClient = Client
ServiceFactory = Callable[[Path], Awaitable[ServiceClient]]
ServerFactory = Callable[..., Awaitable[TestServer]]


def gateway_document(
    routes: dict[str, list[str]],
    *,
    route_extra: dict[str, dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A gateway config document: `routes` (prefix -> upstream URLs), the demo and the other
    consumer, and any other top-level keys; `route_extra` adds keys to single routes."""
    return {
        "routes": [
            {"prefix": prefix, "upstreams": ups, **(route_extra or {}).get(prefix, {})}
            for prefix, ups in routes.items()
        ],
        "consumers": [
            {"name": "demo", "key_sha256": digest_of(DEMO_KEY.encode()).hex()},
            {"name": "other", "key_sha256": digest_of(OTHER_KEY.encode()).hex()},
        ],
        **extra,
    }


def make_settings(
    routes: dict[str, list[str]],
    *,
    secret: str = TEST_SECRET,
    extra: dict[str, Any] | None = None,
    route_extra: dict[str, dict[str, Any]] | None = None,
) -> GatewaySettings:
    document = gateway_document(routes, route_extra=route_extra, **(extra or {}))
    return parse(document, {"GATEWAY_SECRET": secret})


def make_service_settings() -> ServiceSettings:
    return load_service_settings({"GATEWAY_SECRET": TEST_SECRET})


def url_of(server: TestClient[Any, Any] | TestServer) -> str:
    return str(server.make_url("")).rstrip("/")


async def problem(resp: ClientResponse, status: int) -> dict[str, Any]:
    """The problem+json body of `resp`, checked for `status` and the request id."""
    assert resp.status == status
    assert resp.content_type == PROBLEM
    body: dict[str, Any] = await resp.json()
    assert body["status"] == status
    assert body["request_id"] == resp.headers["X-Request-ID"]
    return body
