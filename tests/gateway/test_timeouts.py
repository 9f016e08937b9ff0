"""Timeouts: connect, read-idle and whole-request give 504 (or cut a started stream); a client
upload that stalls gives 408 and cancels the upstream request."""

from __future__ import annotations

import asyncio
import contextlib
import time

import aiohttp
import pytest

from tests.support import KEY, PROBLEM
from tests.support.apps import GatewayFactory, make_settings
from tests.support.upstream import UpstreamFactory
from tests.support.wait import eventually
from tests.support.wire import exchange, request


async def test_connect_timeout_is_504(make_gateway: GatewayFactory, unaccepting_port: int) -> None:
    settings = make_settings(
        {"/users": [f"http://127.0.0.1:{unaccepting_port}"]},
        extra={"timeouts": {"connect": 0.2}},
    )
    client = await make_gateway(settings)
    started = time.monotonic()
    resp = await client.get("/users/1", headers=KEY)
    assert resp.status == 504
    assert resp.content_type == PROBLEM
    # One retry on the only target: two connect timeouts at most.
    assert 0.2 <= time.monotonic() - started < 2


async def test_read_timeout_is_504_and_set_per_route(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    slow = await make_upstream("slow")
    settings = make_settings(
        {"/users": [slow.url], "/orders": [slow.url]},
        extra={"timeouts": {"read": 30}},
        route_extra={"/users": {"timeouts": {"read": 0.2}}},
    )
    client = await make_gateway(settings)
    started = time.monotonic()
    resp = await client.post("/users/hold", data=b"x", headers=KEY)
    assert resp.status == 504
    assert time.monotonic() - started < 5
    slow.release.set()
    assert (await client.get("/orders/hold", headers=KEY)).status == 200


async def test_total_timeout_is_504_before_the_answer_starts(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    late = await make_upstream("late")
    settings = make_settings({"/users": [late.url]}, extra={"timeouts": {"total": 0.3}})
    client = await make_gateway(settings)
    started = time.monotonic()
    resp = await client.get("/users/hold", headers=KEY)
    assert resp.status == 504
    assert time.monotonic() - started < 1.5


async def test_total_timeout_cuts_a_stream_that_never_ends(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    drip = await make_upstream("drip")
    settings = make_settings({"/users": [drip.url]}, extra={"timeouts": {"total": 0.5, "read": 10}})
    client = await make_gateway(settings)
    started = time.monotonic()
    resp = await client.get("/users/drip", headers=KEY)
    assert resp.status == 200
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert time.monotonic() - started < 3


async def test_stalled_upload_is_408_and_the_upstream_request_is_cancelled(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    sink = await make_upstream("sink")
    settings = make_settings({"/users": [sink.url]}, extra={"timeouts": {"body_idle": 0.3}})
    client = await make_gateway(settings)
    assert client.port is not None
    payload = request("/users/1", "Content-Length: 1000", method="POST", body=b"only-a-part")
    started = time.monotonic()
    result = await exchange(client.port, payload)
    assert result.reply.status == 408
    assert result.reply.headers["Content-Type"] == PROBLEM
    assert result.reply.headers["Connection"] == "close"
    assert time.monotonic() - started < 3
    assert sink.seen == []
    # The upstream saw its request end without the rest of the body.
    await eventually(lambda: sink.interrupted, "the upstream request to be cancelled")


async def test_upload_dripping_past_the_total_timeout_is_408(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    sink = await make_upstream("sink")
    settings = make_settings(
        {"/users": [sink.url]}, extra={"timeouts": {"total": 0.5, "body_idle": 5}}
    )
    client = await make_gateway(settings)
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(request("/users/1", "Content-Length: 100000", method="POST"))
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
