"""Slow and greedy clients: they are cut off, and everyone else keeps being served quickly."""

from __future__ import annotations

import asyncio
import time

from apigw.server import parser_name
from tests.support.apps import GatewayFactory
from tests.support.hostile import LIMITS, Gateway, hostile_settings
from tests.support.wait import eventually
from tests.support.wire import HOST_LINE, KEY_LINE, exchange, request

IDLE = LIMITS["idle_timeout"]
FAST = 0.5  # "well under a second" for a small GET while the gateway is under attack


async def timed_get(port: int, path: str = "/users/1") -> float:
    start = time.monotonic()
    result = await exchange(port, request(path, "Connection: close"), linger=0)
    assert result.statuses == [200]
    return time.monotonic() - start


async def drip_head(port: int, stop: asyncio.Event, dripping: list[int]) -> float:
    """Send a request head one header every 100 ms, forever; return when the gateway hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    try:
        writer.write(f"GET /users/1 HTTP/1.1\r\n{HOST_LINE}\r\n{KEY_LINE}\r\n".encode())
        i = 0
        while not stop.is_set():
            try:
                writer.write(f"X-Drip-{i}: {i}\r\n".encode())
                await writer.drain()
            except ConnectionError:
                break
            if i == 0:
                dripping.append(port)
            i += 1
            try:
                async with asyncio.timeout(0.1):
                    if not await reader.read(1024):
                        break
            except TimeoutError:
                pass
            except ConnectionError:
                break
        return time.monotonic() - start
    finally:
        writer.close()


async def test_slowloris_heads_are_cut_off_while_others_are_served(gw: Gateway) -> None:
    stop = asyncio.Event()
    dripping: list[int] = []
    drips = [asyncio.create_task(drip_head(gw.port, stop, dripping)) for _ in range(50)]
    await eventually(lambda: len(dripping) == 50, "50 connections dripping")
    latencies = [await timed_get(gw.port) for _ in range(10)]
    try:
        async with asyncio.timeout(IDLE + 3):
            held = await asyncio.gather(*drips)
    finally:
        stop.set()
    assert max(latencies) < FAST, latencies
    # Every dripping connection was closed by the idle timeout, none lived much longer.
    assert max(held) < IDLE + 1.5, max(held)
    assert [s.raw_path for s in gw.upstream.seen] == ["/users/1"] * 10


async def test_idle_keep_alive_connection_is_closed(gw: Gateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        writer.write(request("/users/1"))
        await writer.drain()
        assert (await reader.read(65536)).startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        async with asyncio.timeout(IDLE + 3):
            assert await reader.read(65536) == b""
        assert IDLE - 0.3 < time.monotonic() - start < IDLE + 1.5
    finally:
        writer.close()


async def test_connection_that_sends_nothing_is_closed(gw: Gateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    try:
        async with asyncio.timeout(IDLE + 3):
            assert await reader.read(65536) == b""
    finally:
        writer.close()


async def test_stalled_bodies_get_408_while_others_are_served(gw: Gateway) -> None:
    stalled = [
        asyncio.create_task(
            gw.send(
                request("/orders/1", "Content-Length: 100", method="POST", body=b"partial"),
                linger=1.5,
            )
        )
        for _ in range(20)
    ]
    # Every stalled upload is streaming to the upstream before the small GETs go out.
    await eventually(lambda: gw.upstream.requests == 20, "20 stalled uploads upstream")
    latencies = [await timed_get(gw.port) for _ in range(5)]
    results = await asyncio.gather(*stalled)
    assert max(latencies) < FAST, latencies
    for result in results:
        assert result.statuses == [408]
        assert result.closed
    # The stalled uploads were aborted upstream: only the small GETs arrived complete.
    assert [s.method for s in gw.upstream.seen] == ["GET"] * 5


async def test_in_flight_cap_answers_503_and_recovers(
    make_gateway: GatewayFactory, gw: Gateway
) -> None:
    echo = gw.upstream
    client = await make_gateway(hostile_settings(echo, max_in_flight=2))
    assert client.port is not None
    port = client.port
    capped = Gateway(port, echo, gw.transcript)
    held = [asyncio.create_task(exchange(port, request("/users/hold"))) for _ in range(2)]
    await eventually(lambda: echo.held == 2, "two requests held upstream")
    refused = await capped.send(request("/users/1"), linger=1.5)
    healthz = await exchange(port, request("/healthz", key=False))
    echo.release.set()
    done = await asyncio.gather(*held)
    assert refused.statuses == [503]
    assert refused.replies[0].headers["Retry-After"] == "1"
    assert refused.closed
    assert healthz.statuses == [503]
    assert [r.statuses for r in done] == [[200], [200]]
    # Refused, failed and finished requests all left the count: the cap is free again.
    for _ in range(3):
        assert (await exchange(port, request("/users/1", key=False))).statuses == [401]
    assert (await exchange(port, request("/users/1"))).statuses == [200]
    assert (await exchange(port, request("/users/1"))).statuses == [200]


async def test_garbage_flood_is_answered_and_others_are_served(gw: Gateway) -> None:
    garbage = [
        asyncio.create_task(gw.send(b"\x00\x01 not http at all\r\n\r\n", linger=1.5))
        for _ in range(100)
    ]
    latencies = [await timed_get(gw.port) for _ in range(5)]
    results = await asyncio.gather(*garbage)
    assert max(latencies) < FAST, latencies
    for result in results:
        assert result.statuses == [400], parser_name()
        assert result.closed
