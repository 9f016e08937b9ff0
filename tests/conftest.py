"""Shared fixtures: settings factories and an echo upstream that reports what it received."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from apigw.config import (
    GatewaySettings,
    ServiceSettings,
    load_service_settings,
    parse_gateway_settings,
)
from apigw.config.consumers import digest_of
from apigw.shared.reserved import SPEC_PATH

DEMO_KEY = "secret002oUdaRJA"
OTHER_KEY = "gw_other-consumer-key-0123456789"
TEST_SECRET = "test-gateway-secret-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_settings(
    routes: dict[str, list[str]],
    *,
    secret: str = TEST_SECRET,
    extra: dict[str, Any] | None = None,
    route_extra: dict[str, dict[str, Any]] | None = None,
) -> GatewaySettings:
    document: dict[str, Any] = {
        "routes": [
            {"prefix": prefix, "upstreams": ups, **(route_extra or {}).get(prefix, {})}
            for prefix, ups in routes.items()
        ],
        "consumers": [
            {"name": "demo", "key_sha256": digest_of(DEMO_KEY.encode()).hex()},
            {"name": "other", "key_sha256": digest_of(OTHER_KEY.encode()).hex()},
        ],
        **(extra or {}),
    }
    return parse_gateway_settings(document, {"GATEWAY_SECRET": secret})


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: CIMultiDict[str]
    body: bytes
    peer: tuple[str, int]  # the gateway's end of the upstream connection


@dataclass
class EchoUpstream:
    """A fake backend: records every request and answers with a JSON report of it.

    Special paths (under any prefix) change the answer: see `handle`.
    """

    server: TestServer | None = None
    seen: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith(SPEC_PATH):
            # The gateway's start-up fetch of the backend's OpenAPI document, not proxied
            # traffic: not recorded, and "no document here" (tests/test_docs_* cover it).
            raise web.HTTPNotFound()
        body = await request.read()
        assert request.transport is not None
        peer = request.transport.get_extra_info("peername")
        self.seen.append(
            Seen(request.method, request.raw_path, CIMultiDict(request.headers), body, peer)
        )
        tail = request.path.rsplit("/", 1)[-1]
        if tail == "cookies":
            resp = web.Response(status=201, reason="Made It", text="ok")
            resp.headers.add("Set-Cookie", "a=1; Path=/")
            resp.headers.add("Set-Cookie", "b=2; Path=/")
            resp.headers["X-Custom"] = "kept"
            return resp
        if tail == "redirect":
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        if tail == "gzip":
            return web.Response(
                body=gzip.compress(b"compressed payload"),
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
            )
        if tail == "hop":
            return web.Response(
                text="hop",
                headers={
                    "Connection": "keep-alive, X-Upstream-Private",
                    "X-Upstream-Private": "internal",
                    "Keep-Alive": "timeout=5",
                    "X-Gateway-Secret": "leaked-by-a-bad-backend",
                    "Proxy-Authenticate": "Basic",
                },
            )
        if tail.startswith("status-"):
            return web.Response(status=int(tail.removeprefix("status-")), text="status")
        if tail.startswith("big-"):
            size = int(tail.removeprefix("big-"))
            stream = web.StreamResponse()
            stream.content_length = size
            await stream.prepare(request)
            chunk = b"x" * 65536
            left = size if request.method != "HEAD" else 0
            while left:
                part = chunk[: min(left, len(chunk))]
                await stream.write(part)
                left -= len(part)
            return stream
        if tail == "cut":
            # Promise 1 MB, send a part, then drop the connection.
            stream = web.StreamResponse()
            stream.content_length = 1_000_000
            await stream.prepare(request)
            await stream.write(b"y" * 10_000)
            assert request.transport is not None
            request.transport.abort()
            return stream
        if tail == "slow":
            await asyncio.sleep(30)
        return web.json_response(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "body_len": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "headers": [[k, v] for k, v in request.headers.items()],
            }
        )


async def start_echo(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> EchoUpstream:
    echo = EchoUpstream()
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", echo.handle)
    echo.server = await aiohttp_server(app)
    return echo


@pytest.fixture
async def echo_upstream(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> EchoUpstream:
    return await start_echo(aiohttp_server)


def pytest_report_header(config: pytest.Config) -> str:
    from apigw.server import parser_name

    return f"aiohttp HTTP parser: {parser_name()}"


GatewayFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def make_gateway(
    aiohttp_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> GatewayFactory:
    """Starts the real gateway app on a free port with the given settings."""
    from gateway import create_app

    async def factory(settings: GatewaySettings) -> TestClient[web.Request, web.Application]:
        return await aiohttp_client(await create_app(settings))

    return factory


@pytest.fixture
async def gateway(
    make_gateway: GatewayFactory, echo_upstream: EchoUpstream
) -> TestClient[Any, Any]:
    """The gateway routing /users and /orders to the echo upstream."""
    return await make_gateway(
        make_settings({"/users": [echo_upstream.url], "/orders": [echo_upstream.url]})
    )


SECRET_HEADERS = {"x-gateway-secret": TEST_SECRET}
PROBLEM = "application/problem+json"
ServiceClient = TestClient[web.Request, web.Application]
ServiceFactory = Callable[[Path], Awaitable[ServiceClient]]


def make_service_settings() -> ServiceSettings:
    return load_service_settings({"GATEWAY_SECRET": TEST_SECRET})


def _service_factory(
    aiohttp_client: Callable[..., Awaitable[ServiceClient]],
    create_app: Callable[[ServiceSettings, Path], Awaitable[web.Application]],
) -> ServiceFactory:
    async def factory(db_path: Path) -> ServiceClient:
        app = await create_app(make_service_settings(), db_path)
        # Every request carries the gateway secret, as the gateway would send it.
        return await aiohttp_client(app, headers=SECRET_HEADERS)

    return factory


@pytest.fixture
def make_users(aiohttp_client: Callable[..., Awaitable[ServiceClient]]) -> ServiceFactory:
    """Starts the real users service on a database file; several may share one file."""
    from users_service import create_app

    return _service_factory(aiohttp_client, create_app)


@pytest.fixture
def make_orders(aiohttp_client: Callable[..., Awaitable[ServiceClient]]) -> ServiceFactory:
    """Starts the real orders service on a database file; several may share one file."""
    from order_service import create_app

    return _service_factory(aiohttp_client, create_app)


@pytest.fixture
async def users(make_users: ServiceFactory, tmp_path: Path) -> ServiceClient:
    return await make_users(tmp_path / "users.db")


@pytest.fixture
async def orders(make_orders: ServiceFactory, tmp_path: Path) -> ServiceClient:
    return await make_orders(tmp_path / "orders.db")


async def problem(resp: ClientResponse, status: int) -> dict[str, Any]:
    """The problem+json body of `resp`, checked for `status` and the request id."""
    assert resp.status == status
    assert resp.content_type == PROBLEM
    body: dict[str, Any] = await resp.json()
    assert body["status"] == status
    assert body["request_id"] == resp.headers["X-Request-ID"]
    return body
