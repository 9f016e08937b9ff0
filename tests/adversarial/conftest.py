"""A gateway with small, known limits in front of a quiet echo upstream, and a leak guard.

Every test here runs with every log record captured and every byte the gateway sent kept;
after the test, none of them may contain a client key or the gateway secret.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from apigw.shared.reserved import SPEC_PATH
from tests.adversarial.wire import Exchange, exchange
from tests.conftest import DEMO_KEY, OTHER_KEY, TEST_SECRET, GatewayFactory, Seen, make_settings

# Small limits, so that "exactly at" and "one over" are cheap to build.
LIMITS: dict[str, Any] = {
    "max_request_line": 1024,
    "max_header_field": 512,
    "max_header_bytes": 4096,
    "max_headers": 20,
    "idle_timeout": 1.0,
    "lingering_time": 0.2,
}
USERS_MAX_BODY = 1000
BODY_IDLE = 0.5
NEEDLES = (DEMO_KEY, OTHER_KEY, TEST_SECRET)


@dataclass
class QuietEcho:
    """A backend that records every complete request and answers without echoing headers.

    `/block` paths wait for `release`, to hold requests in flight.
    """

    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    blocked: int = 0
    arrival: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith(SPEC_PATH):
            # The gateway's start-up fetch of the backend's OpenAPI document: not client traffic.
            raise web.HTTPNotFound()
        body = await request.read()
        assert request.transport is not None
        peer = request.transport.get_extra_info("peername")
        self.seen.append(
            Seen(request.method, request.raw_path, CIMultiDict(request.headers), body, peer)
        )
        if request.path.endswith("/block"):
            self.blocked += 1
            self.arrival.set()
            await self.release.wait()
        return web.json_response(
            {"method": request.method, "raw_path": request.raw_path, "body_len": len(body)}
        )


@dataclass
class Gateway:
    port: int
    upstream: QuietEcho
    transcript: list[bytes]

    async def send(self, *parts: bytes, **options: Any) -> Exchange:
        result = await exchange(self.port, *parts, **options)
        self.transcript.append(result.raw)
        return result


@pytest.fixture
def transcript() -> list[bytes]:
    return []


@pytest.fixture
async def quiet_echo(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> QuietEcho:
    echo = QuietEcho()
    # Roomier than the gateway, so that what the gateway accepts the backend accepts too.
    app = web.Application(
        client_max_size=1 << 30,
        handler_args={"max_line_size": 65536, "max_field_size": 65536, "max_headers": 1000},
    )
    app.router.add_route("*", "/{tail:.*}", echo.handle)
    echo.server = await aiohttp_server(app)
    return echo


def hostile_settings(echo: QuietEcho, **limits: Any) -> Any:
    return make_settings(
        {"/users": [echo.url], "/orders": [echo.url]},
        extra={
            "limits": {**LIMITS, **limits},
            "timeouts": {"body_idle": BODY_IDLE},
            "max_body_bytes": None,
        },
        # /orders keeps WebSockets off: there an Upgrade is stripped like any hop-by-hop header.
        route_extra={
            "/users": {"max_body_bytes": USERS_MAX_BODY},
            "/orders": {"websocket": {"enabled": False}},
        },
    )


@pytest.fixture
async def gw(
    make_gateway: GatewayFactory, quiet_echo: QuietEcho, transcript: list[bytes]
) -> Gateway:
    client = await make_gateway(hostile_settings(quiet_echo))
    assert client.port is not None
    return Gateway(client.port, quiet_echo, transcript)


def _record_text(record: logging.LogRecord) -> str:
    return logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)


@pytest.fixture(autouse=True)
def no_key_or_secret_leaks(
    caplog: pytest.LogCaptureFixture, transcript: list[bytes]
) -> Iterator[None]:
    """Fails the test if any log record or any byte the gateway sent holds a key or the secret."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = _record_text(record)
        for needle in NEEDLES:
            assert needle not in text, f"log record of {record.name} leaks a credential"
    for raw in transcript:
        text = raw.decode("latin-1")
        for needle in NEEDLES:
            assert needle not in text, "a response leaks a credential"
