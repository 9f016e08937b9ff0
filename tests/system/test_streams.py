"""Long-lived streamed responses (SSE) through a real gateway process: only an idle timeout
applies to them, every event passes at once, and a client that leaves is noticed."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import aiohttp

from tests.support import KEY
from tests.support.wait import eventually
from tests.system.conftest import WsSystem

# Short limits, so that a stream outliving them takes seconds.
SHORT: dict[str, Any] = {
    "timeouts": {"connect": 2, "read": 0.5, "total": 1},
    "streaming": {"idle_timeout": 5},
}


async def read_events(resp: aiohttp.ClientResponse) -> list[tuple[float, bytes]]:
    """Every event (or comment) with the time it arrived."""
    events = []
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        while b"\n\n" in buffer:
            event, buffer = buffer.split(b"\n\n", 1)
            events.append((time.time(), event))
    return events


async def test_each_event_arrives_within_50ms_of_being_sent(ws_system: WsSystem) -> None:
    await ws_system.start_gateway()
    async with (
        aiohttp.ClientSession() as session,
        session.get(ws_system.url + "/sse/events?n=10&gap=0.1", headers=KEY) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/event-stream"
        events = await read_events(resp)
    assert len(events) == 10
    delays = [arrived - float(event.split(b"data: ")[1]) for arrived, event in events]
    print(f"SSE delays: max {max(delays) * 1000:.1f} ms, min {min(delays) * 1000:.1f} ms")
    assert max(delays) < 0.05, delays


async def test_a_stream_quiet_for_longer_than_read_lives_on_its_heartbeats(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway(**SHORT)
    async with (
        aiohttp.ClientSession() as session,
        # Heartbeats 0.8 s apart: every gap is longer than `read` (0.5 s).
        session.get(ws_system.url + "/sse/heartbeat?beats=3&gap=0.8", headers=KEY) as resp,
    ):
        events = [event for _, event in await read_events(resp)]
    assert events == [b": heartbeat"] * 3 + [b"data: done"]


async def test_a_stream_longer_than_total_survives(ws_system: WsSystem) -> None:
    await ws_system.start_gateway(**SHORT)
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.get(ws_system.url + "/sse/events?n=8&gap=0.25", headers=KEY) as resp,
    ):
        events = await read_events(resp)
    assert len(events) == 8
    assert time.monotonic() - started > 1  # longer than `total`, and complete


async def test_an_ordinary_response_still_gets_the_read_timeout(ws_system: WsSystem) -> None:
    # Streams are told apart by their type: the same slow answer as text/plain is cut.
    await ws_system.start_gateway(
        timeouts={"connect": 2, "read": 0.5, "total": 1},
        streaming={"content_types": ["application/x-other"]},
    )
    async with aiohttp.ClientSession() as session:
        resp = await session.get(ws_system.url + "/sse/heartbeat?beats=3&gap=0.8", headers=KEY)
        try:
            # The head came in time; the body is cut at the first gap longer than `read`.
            assert resp.status == 200
            try:
                await resp.read()
                cut = False
            except aiohttp.ClientPayloadError:
                cut = True
            assert cut
        finally:
            resp.release()


async def test_a_client_leaving_a_quiet_stream_frees_the_backend_within_a_second(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway()
    reader, writer = await asyncio.open_connection("127.0.0.1", ws_system.gateway_port)
    writer.write(
        f"GET /sse/quiet HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY['x-api-key']}\r\n\r\n".encode()
    )
    await reader.readuntil(b"data: hello\n\n")
    writer.close()
    await writer.wait_closed()
    # The stream is silent: only the gateway's check can notice, and close the backend's side.
    await eventually(lambda: ws_system.report()["quiet_closed"] == 1, "the backend freed", 3)


async def test_streams_have_their_own_cap_apart_from_ordinary_requests(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway({"limits": {"max_in_flight": 2, "max_streams": 3}})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        streams = []
        for _ in range(3):
            resp = await session.get(ws_system.url + "/sse/quiet", headers=KEY)
            assert resp.status == 200
            streams.append(resp)
        # Three streams open, and ordinary requests (cap 2) still get through ...
        ordinary = await session.get(ws_system.url + "/ws/echo", headers=KEY)
        assert ordinary.status != 503
        ordinary.release()
        # ... while a fourth stream is refused.
        fourth = await session.get(ws_system.url + "/sse/quiet", headers=KEY)
        assert fourth.status == 503
        fourth.release()
        for resp in streams:
            resp.close()


async def test_sigterm_gives_streams_the_grace_period_then_ends_them_cleanly(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway({"shutdown": {"drain_delay": 0.1, "grace": 2}})
    async with (
        aiohttp.ClientSession() as session,
        session.get(ws_system.url + "/sse/quiet", headers=KEY) as resp,
    ):
        assert resp.status == 200
        assert ws_system.gateway is not None
        os.kill(ws_system.gateway.popen.pid, signal.SIGTERM)
        started = time.monotonic()
        # The chunked terminator comes: a complete response, no payload error.
        body = await resp.read()
        waited = time.monotonic() - started
    assert body == b"data: hello\n\n"
    assert waited > 1  # it was given the grace period (2 s), not cut at once
    assert ws_system.gateway.popen.wait(15) == 0
