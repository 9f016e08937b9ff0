"""What the client gets when the backend fails: 502, 504, or an aborted connection."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support import KEY, PROBLEM, free_port
from tests.support.apps import GatewayFactory, ServerFactory, make_settings, url_of
from tests.support.upstream import Upstream


async def test_refused_upstream_is_502(make_gateway: GatewayFactory) -> None:
    client = await make_gateway(make_settings({"/users": [f"http://127.0.0.1:{free_port()}"]}))
    resp = await client.get("/users/1", headers=KEY)
    assert resp.status == 502
    assert resp.content_type == PROBLEM
    assert (await resp.json())["request_id"] == resp.headers["X-Request-ID"]


@pytest.mark.parametrize("fault", ["cut", "reset"], ids=["closed", "reset"])
async def test_upstream_gone_mid_body_aborts_the_client_and_the_pool_recovers(
    gateway: TestClient[Any, Any], fault: str
) -> None:
    resp = await gateway.get(f"/users/{fault}", headers=KEY)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "1000000"
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert (await gateway.get("/users/1", headers=KEY)).status == 200


async def test_upstream_switching_protocols_on_a_plain_request_is_refused(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    async def switch(request: web.Request) -> web.StreamResponse:
        # A 101 the client never asked for (no WebSocket handshake): never relayed.
        response = web.StreamResponse(status=101, headers={"Upgrade": "websocket"})
        await response.prepare(request)
        return response

    app = web.Application()
    app.router.add_get("/users/ws", switch)
    upstream = await aiohttp_server(app)
    client = await make_gateway(make_settings({"/users": [url_of(upstream)]}))
    resp = await client.get("/users/ws", headers=KEY)
    assert resp.status == 502


async def test_upstream_connections_are_pooled(
    gateway: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    for _ in range(20):
        assert (await gateway.get("/users/1", headers=KEY)).status == 200
    assert len({seen.peer for seen in echo_upstream.seen}) == 1
    results = await asyncio.gather(*(gateway.get("/users/1", headers=KEY) for _ in range(50)))
    assert {r.status for r in results} == {200}
    burst = {seen.peer for seen in echo_upstream.seen}
    # After the burst, requests reuse the connections it opened: no new one.
    for _ in range(20):
        assert (await gateway.get("/users/1", headers=KEY)).status == 200
    assert {seen.peer for seen in echo_upstream.seen} == burst


async def test_cookies_from_one_client_never_reach_another(
    gateway: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    await gateway.get("/users/cookies", headers=KEY)
    gateway.session.cookie_jar.clear()
    await gateway.get("/users/1", headers=KEY)
    assert "Cookie" not in echo_upstream.seen[-1].headers
