"""What the client gets when the backend fails: 502, 504, or an aborted connection."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.conftest import DEMO_KEY, EchoUpstream, GatewayFactory, free_port, make_settings

KEY = {"x-api-key": DEMO_KEY}
PROBLEM = "application/problem+json"


async def test_refused_upstream_is_502(make_gateway: GatewayFactory) -> None:
    client = await make_gateway(make_settings({"/users": [f"http://127.0.0.1:{free_port()}"]}))
    resp = await client.get("/users/1", headers=KEY)
    assert resp.status == 502
    assert resp.content_type == PROBLEM
    assert (await resp.json())["request_id"] == resp.headers["X-Request-ID"]


async def test_slow_upstream_is_504(
    make_gateway: GatewayFactory, echo_upstream: EchoUpstream
) -> None:
    client = await make_gateway(
        make_settings(
            {"/users": [echo_upstream.url]},
            route_extra={"/users": {"timeouts": {"read": 0.3}}},
        )
    )
    resp = await client.get("/users/slow", headers=KEY)
    assert resp.status == 504
    assert resp.content_type == PROBLEM


async def test_connect_timeout_is_504(make_gateway: GatewayFactory) -> None:
    # A listener that never accepts, with its backlog filled: new handshakes never complete.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        client = await make_gateway(
            make_settings(
                {"/users": [f"http://127.0.0.1:{port}"]},
                route_extra={"/users": {"timeouts": {"connect": 0.3}}},
            )
        )
        resp = await client.get("/users/1", headers=KEY)
        assert resp.status == 504
        assert resp.content_type == PROBLEM
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_upstream_gone_mid_body_aborts_the_client(gateway: TestClient[Any, Any]) -> None:
    resp = await gateway.get("/users/cut", headers=KEY)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "1000000"
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()


async def test_upstream_switching_protocols_on_a_plain_request_is_refused(
    make_gateway: GatewayFactory, aiohttp_server: Any
) -> None:
    async def switch(request: web.Request) -> web.StreamResponse:
        # A 101 the client never asked for (no WebSocket handshake): never relayed.
        response = web.StreamResponse(status=101, headers={"Upgrade": "websocket"})
        await response.prepare(request)
        return response

    app = web.Application()
    app.router.add_get("/users/ws", switch)
    upstream = await aiohttp_server(app)
    client = await make_gateway(make_settings({"/users": [str(upstream.make_url(""))]}))
    resp = await client.get("/users/ws", headers=KEY)
    assert resp.status == 502


async def test_upstream_connections_are_pooled(
    gateway: TestClient[Any, Any], echo_upstream: EchoUpstream
) -> None:
    for _ in range(20):
        assert (await gateway.get("/users/1", headers=KEY)).status == 200
    assert len({seen.peer for seen in echo_upstream.seen}) == 1
    results = await asyncio.gather(*(gateway.get("/users/1", headers=KEY) for _ in range(50)))
    assert {r.status for r in results} == {200}
    assert len({seen.peer for seen in echo_upstream.seen}) <= 51


async def test_cookies_from_one_client_never_reach_another(
    gateway: TestClient[Any, Any], echo_upstream: EchoUpstream
) -> None:
    await gateway.get("/users/cookies", headers=KEY)
    gateway.session.cookie_jar.clear()
    await gateway.get("/users/1", headers=KEY)
    assert "Cookie" not in echo_upstream.seen[-1].headers
