"""Fixtures for every test folder: the real apps in-process, the fake upstream, and ports.

Helpers and constants live in tests/support/.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from apigw.config import GatewaySettings, ServiceSettings
from tests.support import SECRET_HEADERS
from tests.support.apps import (
    Client,
    GatewayFactory,
    ServerFactory,
    ServiceClient,
    ServiceFactory,
    make_service_settings,
    make_settings,
)
from tests.support.upstream import Upstream, UpstreamFactory, start_upstream


def pytest_report_header(config: pytest.Config) -> str:
    from apigw.server import parser_name

    return f"aiohttp HTTP parser: {parser_name()}"


@pytest.fixture
def make_upstream(aiohttp_server: ServerFactory) -> UpstreamFactory:
    """Starts a fake upstream (tests/support/upstream.py) with the given options."""

    async def factory(name: str = "upstream", **options: Any) -> Upstream:
        return await start_upstream(aiohttp_server, name=name, **options)

    return factory


@pytest.fixture
async def echo_upstream(make_upstream: UpstreamFactory) -> Upstream:
    return await make_upstream()


@pytest.fixture
def make_gateway(
    aiohttp_server: ServerFactory, aiohttp_client: Callable[..., Awaitable[Client]]
) -> GatewayFactory:
    """Starts the real gateway app on a free port with the given settings.

    It asks for `aiohttp_server` first so that the gateway stops before its upstreams, as in
    production: an upstream stopping first waits (10 s) for the gateway's open connections.
    """
    from gateway import create_app

    async def factory(settings: GatewaySettings) -> Client:
        return await aiohttp_client(await create_app(settings))

    return factory


@pytest.fixture
async def gateway(make_gateway: GatewayFactory, echo_upstream: Upstream) -> Client:
    """The gateway routing /users and /orders to the echo upstream."""
    return await make_gateway(
        make_settings({"/users": [echo_upstream.url], "/orders": [echo_upstream.url]})
    )


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


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A port whose accept queue is full, so a new connect hangs (its SYN is dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for sock in (*fillers, listener):
            sock.close()
