"""Bodies stream both ways without buffering; methods, HEAD and Expect behave."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support import KEY, PROBLEM, MiB
from tests.support.apps import GatewayFactory, make_settings
from tests.support.upstream import CHUNK, Upstream, UpstreamFactory
from tests.support.wait import eventually
from tests.support.wire import exchange, request


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_methods_are_forwarded(
    gateway: TestClient[Any, Any], echo_upstream: Upstream, method: str
) -> None:
    resp = await gateway.request(method, "/orders/1", headers=KEY)
    assert resp.status == 200
    assert echo_upstream.seen[0].method == method


async def test_head_keeps_length_and_sends_no_body(gateway: TestClient[Any, Any]) -> None:
    resp = await gateway.head("/users/big-5000", headers=KEY)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == "5000"
    assert await resp.read() == b""
    # Bytes after a HEAD reply would corrupt the next response on this keep-alive connection.
    again = await gateway.get("/users/1", headers=KEY)
    assert again.status == 200


async def test_large_download_arrives_intact(gateway: TestClient[Any, Any]) -> None:
    size = 16 * MiB + 123
    resp = await gateway.get(f"/users/big-{size}", headers=KEY)
    assert resp.status == 200
    assert resp.headers["Content-Length"] == str(size)
    digest, expected = hashlib.sha256(), hashlib.sha256()
    async for chunk in resp.content.iter_any():
        digest.update(chunk)
    for start in range(0, size, len(CHUNK)):
        expected.update(CHUNK[: size - start])
    assert digest.hexdigest() == expected.hexdigest()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_large_upload_arrives_intact(
    gateway: TestClient[Any, Any], echo_upstream: Upstream, chunked: bool
) -> None:
    payload = os.urandom(MiB) * 8

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 300_000):
            yield payload[i : i + 300_000]

    data: Any = pieces() if chunked else io.BytesIO(payload)
    resp = await gateway.post("/orders/upload", headers=KEY, data=data)
    assert resp.status == 200
    report = await resp.json()
    assert report["body_len"] == len(payload)
    assert report["body_sha256"] == hashlib.sha256(payload).hexdigest()
    seen = echo_upstream.seen[0].headers
    if chunked:
        assert seen["Transfer-Encoding"] == "chunked"
    else:
        assert seen["Content-Length"] == str(len(payload))


async def test_response_streams_before_upstream_finishes(
    make_gateway: GatewayFactory, aiohttp_server: Any
) -> None:
    release = asyncio.Event()

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"first;")
        await release.wait()
        await resp.write(b"second")
        return resp

    app = web.Application()
    app.router.add_get("/users/stream", trickle)
    upstream = await aiohttp_server(app)
    client = await make_gateway(make_settings({"/users": [str(upstream.make_url(""))]}))
    resp = await client.get("/users/stream", headers=KEY)
    # If the gateway buffered, the first part would only come after `release`: a deadlock.
    first = await asyncio.wait_for(resp.content.readexactly(6), timeout=5)
    assert first == b"first;"
    release.set()
    assert await resp.content.read() == b"second"


async def test_request_body_streams_before_client_finishes(
    make_gateway: GatewayFactory, aiohttp_server: Any
) -> None:
    got_first = asyncio.Event()

    async def sink(request: web.Request) -> web.Response:
        first = await request.content.readexactly(6)
        got_first.set()
        rest = await request.content.read()
        return web.Response(text=(first + rest).decode())

    app = web.Application()
    app.router.add_post("/orders/sink", sink)
    upstream = await aiohttp_server(app)
    client = await make_gateway(make_settings({"/orders": [str(upstream.make_url(""))]}))

    async def body() -> AsyncIterator[bytes]:
        yield b"first;"
        # The upstream must see the first part while the client still holds the rest.
        await asyncio.wait_for(got_first.wait(), timeout=5)
        yield b"second"

    resp = await client.post("/orders/sink", headers=KEY, data=body())
    assert await resp.text() == "first;second"


async def test_expect_continue_waits_for_the_key(
    gateway: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    assert gateway.port is not None
    head = request(
        "/orders/1", "Expect: 100-continue", "Content-Length: 5", method="POST", key=False
    )
    result = await exchange(gateway.port, head)
    assert result.reply.status == 401
    assert b"100 Continue" not in result.raw
    assert echo_upstream.seen == []


async def test_expect_continue_with_key_gets_100_then_forwards(
    gateway: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    assert gateway.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(
            request("/orders/1", "Expect: 100-continue", "Content-Length: 5", method="POST")
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(b"hello")
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        assert final.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    assert echo_upstream.seen[0].body == b"hello"
    assert "expect" not in echo_upstream.seen[0].headers


async def test_unknown_expectation_is_417(
    gateway: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    assert gateway.port is not None
    result = await exchange(
        gateway.port, request("/orders/1", "Expect: something-else", method="POST")
    )
    assert result.reply.status == 417
    assert result.reply.headers["Content-Type"] == PROBLEM
    assert echo_upstream.seen == []


async def test_body_over_route_limit_by_content_length_is_413_before_upstream(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    client = await make_gateway(
        make_settings({"/orders": [echo_upstream.url]}, extra={"max_body_bytes": 1000})
    )
    resp = await client.post("/orders/1", headers=KEY, data=b"x" * 1001)
    assert resp.status == 413
    assert echo_upstream.seen == []
    ok = await client.post("/orders/1", headers=KEY, data=b"x" * 1000)
    assert ok.status == 200


async def test_client_leaving_mid_download_is_not_an_error(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory, caplog: pytest.LogCaptureFixture
) -> None:
    drip = await make_upstream()
    client = await make_gateway(make_settings({"/users": [drip.url]}))
    resp = await client.get("/users/drip", headers=KEY)
    await resp.content.readexactly(3)
    resp.close()
    # The gateway notices on its next write, and closes the upstream connection.
    await eventually(lambda: drip.interrupted == ["drip"], "the upstream stream to be closed")
    # It is still healthy, and logged no error.
    assert (await client.get("/users/1", headers=KEY)).status == 200
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("status", [200, 204, 304, 404])
async def test_whole_answers_keep_their_framing_on_a_kept_connection(
    gateway: TestClient[Any, Any], status: int
) -> None:
    # A small answer leaves in one write (head and body together); its framing must still be
    # exact, or the next answer on the connection would be read wrong.
    assert gateway.port is not None
    done = await exchange(
        gateway.port, request(f"/users/status-{status}") + request("/users/1"), expect=2
    )
    first, second = (r for r in done.replies if r.status >= 200)
    assert first.status == status
    if status in (204, 304):
        assert "Content-Length" not in first.headers
        assert first.body == b""
    else:
        assert first.headers["Content-Length"] == str(len(first.body)) == "6"
        assert first.body == b"status"
    assert second.status == 200
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert first.headers["Server"] == second.headers["Server"]
