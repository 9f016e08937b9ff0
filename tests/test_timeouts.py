"""Timeouts: connect, read-idle and whole-request give 504 (or cut a started stream); a client
upload that stalls gives 408 and cancels the upstream request."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import DEMO_KEY, GatewayFactory, make_settings
from tests.fakes import ServerFactory, start_named
from tests.rawhttp import get, raw_request

KEY = {"x-api-key": DEMO_KEY}


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


async def test_connect_timeout_is_504(make_gateway: GatewayFactory, unaccepting_port: int) -> None:
    settings = make_settings(
        {"/users": [f"http://127.0.0.1:{unaccepting_port}"]},
        extra={"timeouts": {"connect": 0.2}},
    )
    client = await make_gateway(settings)
    started = time.monotonic()
    resp = await client.get("/users/1", headers=KEY)
    assert resp.status == 504
    assert resp.content_type == "application/problem+json"
    # One retry on the only target: two connect timeouts at most.
    assert 0.2 <= time.monotonic() - started < 2


async def test_read_timeout_is_504_and_set_per_route(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    slow = await start_named(aiohttp_server, "slow")
    settings = make_settings(
        {"/users": [slow.url], "/orders": [slow.url]},
        extra={"timeouts": {"read": 30}},
        route_extra={"/users": {"timeouts": {"read": 0.2}}},
    )
    client = await make_gateway(settings)
    started = time.monotonic()
    resp = await client.post("/users/hold/1", data=b"x", headers=KEY)
    assert resp.status == 504
    assert time.monotonic() - started < 5
    slow.release.set()
    assert (await client.get("/orders/hold/1", headers=KEY)).status == 200


async def test_total_timeout_is_504_before_the_answer_starts(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    late = await start_named(aiohttp_server, "late")
    settings = make_settings({"/users": [late.url]}, extra={"timeouts": {"total": 0.3}})
    client = await make_gateway(settings)
    started = time.monotonic()
    resp = await client.get("/users/late", headers=KEY)
    assert resp.status == 504
    assert time.monotonic() - started < 1.5


async def test_total_timeout_cuts_a_stream_that_never_ends(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    drip = await start_named(aiohttp_server, "drip")
    settings = make_settings({"/users": [drip.url]}, extra={"timeouts": {"total": 0.5, "read": 10}})
    client = await make_gateway(settings)
    started = time.monotonic()
    resp = await client.get("/users/drip", headers=KEY)
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert time.monotonic() - started < 3


async def test_stalled_upload_is_408_and_the_upstream_request_is_cancelled(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    sink = await start_named(aiohttp_server, "sink")
    settings = make_settings({"/users": [sink.url]}, extra={"timeouts": {"body_idle": 0.3}})
    client = await make_gateway(settings)
    assert client.port is not None
    payload = get(
        "/users/1",
        f"x-api-key: {DEMO_KEY}",
        "Content-Length: 1000",
        method="POST",
        body=b"only-a-part",
    )
    started = time.monotonic()
    resp = await raw_request(client.port, payload, timeout=5)
    assert resp.status == 408
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert resp.headers["Connection"] == "close"
    assert time.monotonic() - started < 3
    # The upstream saw its request end without the rest of the body.
    deadline = time.monotonic() + 5
    while not sink.body_errors:
        assert time.monotonic() < deadline, "the upstream request was never cancelled"
        await asyncio.sleep(0.02)


async def test_upload_dripping_past_the_total_timeout_is_408(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    sink = await start_named(aiohttp_server, "sink")
    settings = make_settings(
        {"/users": [sink.url]}, extra={"timeouts": {"total": 0.5, "body_idle": 5}}
    )
    client = await make_gateway(settings)
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(
            get("/users/1", f"x-api-key: {DEMO_KEY}", "Content-Length: 100000", method="POST")
        )
        started = time.monotonic()
        answer = b""
        # A byte every 50 ms: never idle for long, but never done either.
        while b"\r\n\r\n" not in answer:
            assert time.monotonic() - started < 3, "the upload was never cut"
            writer.write(b"d")
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                answer += await asyncio.wait_for(reader.read(65536), 0.05)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started >= 0.5


async def test_streamed_upload_over_the_limit_is_413(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    sink = await start_named(aiohttp_server, "sink")
    client = await make_gateway(
        make_settings({"/users": [sink.url]}, extra={"max_body_bytes": 1000})
    )

    async def chunks() -> Any:
        for _ in range(10):
            yield b"c" * 500

    resp = await client.post("/users/1", data=chunks(), headers=KEY)
    assert resp.status == 413
    assert sink.served <= 1
