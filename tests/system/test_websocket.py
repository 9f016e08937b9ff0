"""WebSockets through a real gateway process to a real backend process."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal

import aiohttp
from aiohttp import WSMsgType

from apigw.config.consumers import digest_of
from tests.support import DEMO_KEY, KEY, TEST_SECRET
from tests.support.wait import eventually
from tests.support.ws_client import RawWebSocket, encode_frame
from tests.system.conftest import WsSystem

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE = 0x0, 0x1, 0x2, 0x8
# Sizes on every framing boundary (7-bit, 16-bit and 64-bit lengths), up to 1 MiB.
EDGE_SIZES = (1, 2, 125, 126, 127, 65535, 65536, 65537, 1 << 20)


def message_sizes(count: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    sizes = []
    for i in range(count):
        if i % 250 < len(EDGE_SIZES):
            sizes.append(EDGE_SIZES[i % 250])
        else:
            sizes.append(rng.randint(1, 4096))
    return sizes


async def test_5000_messages_text_and_binary_echo_byte_for_byte(ws_system: WsSystem) -> None:
    await ws_system.start_gateway()
    sizes = message_sizes(5000, seed=1)
    rng = random.Random(2)
    sent: list[str | bytes] = []
    for i, size in enumerate(sizes):
        if i % 2:
            sent.append(rng.randbytes(size))
        else:
            sent.append("".join(rng.choice("aé€𝄞 z") for _ in range(size // 4 or 1)))
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_system.url + "/ws/echo", headers=KEY, max_msg_size=0) as ws,
    ):

        async def send_all() -> None:
            for message in sent:
                if isinstance(message, str):
                    await ws.send_str(message)
                else:
                    await ws.send_bytes(message)

        sender = asyncio.create_task(send_all())
        for expected in sent:
            msg = await ws.receive(timeout=30)
            assert msg.type == (WSMsgType.TEXT if isinstance(expected, str) else WSMsgType.BINARY)
            assert msg.data == expected
        await sender


async def test_5000_fragmented_and_whole_messages_arrive_frame_for_frame(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway()
    rng = random.Random(3)
    frames: list[tuple[bool, int, bytes]] = []
    for i, size in enumerate(message_sizes(5000, seed=4)):
        payload = rng.randbytes(size)
        opcode = OP_BINARY if i % 2 else OP_TEXT
        if opcode == OP_TEXT:
            payload = payload.hex().encode()[:size]
        pieces = rng.choice((1, 1, 2, 3, 5)) if size >= 5 else 1
        cuts = sorted(rng.sample(range(1, size), pieces - 1)) if pieces > 1 else []
        bounds = [0, *cuts, size]
        for n in range(pieces):
            chunk = payload[bounds[n] : bounds[n + 1]]
            frames.append((n == pieces - 1, opcode if n == 0 else OP_CONT, chunk))
    ws = await RawWebSocket.connect(ws_system.gateway_port, "/raw/echo", KEY)
    assert ws.status == 101

    async def send_all() -> None:
        for fin, opcode, payload in frames:
            await ws.send(opcode, payload, fin=fin)

    sender = asyncio.create_task(send_all())
    for fin, opcode, payload in frames:
        frame = await asyncio.wait_for(ws.read_frame(), 30)
        assert (frame.fin, frame.opcode, frame.payload) == (fin, opcode, payload)
    await sender
    await ws.send(OP_CLOSE, (1000).to_bytes(2, "big") + b"done")
    frame = await ws.read_frame()
    assert (frame.opcode, frame.payload) == (OP_CLOSE, (1000).to_bytes(2, "big") + b"done")
    ws.close()


async def test_a_frame_sent_right_behind_the_handshake_is_not_lost(ws_system: WsSystem) -> None:
    # aiohttp's server keeps bytes that came with the head and replays them to the tunnel
    # (RequestHandler.set_parser): an aiohttp upgrade that changed this would fail here.
    await ws_system.start_gateway()
    early = encode_frame(OP_TEXT, b"early bird")
    ws = await RawWebSocket.connect(ws_system.gateway_port, "/raw/echo", KEY, extra=early)
    assert ws.status == 101
    frame = await asyncio.wait_for(ws.read_frame(), 10)
    assert (frame.opcode, frame.payload) == (OP_TEXT, b"early bird")
    ws.close()


async def test_the_subprotocol_the_backend_chose_reaches_the_client(ws_system: WsSystem) -> None:
    await ws_system.start_gateway()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_system.url + "/ws/echo", headers=KEY, protocols=("chat.v1", "chat.v2")
        ) as ws,
    ):
        assert ws.protocol == "chat.v2"
    seen = dict(ws_system.report()["handshakes"][0]["headers"])
    assert seen["Sec-WebSocket-Protocol"] == "chat.v1, chat.v2"


async def test_close_codes_and_reasons_pass_both_ways(ws_system: WsSystem) -> None:
    await ws_system.start_gateway()
    raw = await RawWebSocket.connect(ws_system.gateway_port, "/ws/echo", KEY)
    goodbye = (4001).to_bytes(2, "big") + b"client says bye"
    await raw.send(OP_CLOSE, goodbye)
    assert (await asyncio.wait_for(raw.read_frame(), 10)).opcode == OP_CLOSE
    raw.close()
    assert ws_system.report()["closes"] == [[4001, "client says bye"]]
    # The frame echo answers with the very close frame it got.
    raw = await RawWebSocket.connect(ws_system.gateway_port, "/raw/echo", KEY)
    await raw.send(OP_CLOSE, goodbye)
    frame = await asyncio.wait_for(raw.read_frame(), 10)
    assert (frame.opcode, frame.payload) == (OP_CLOSE, goodbye)
    raw.close()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            ws_system.url + "/ws/close?code=4003&reason=backend+says+bye", headers=KEY
        ) as ws,
    ):
        msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE
        assert (msg.data, msg.extra) == (4003, "backend says bye")


async def test_no_key_is_401_and_the_backend_never_hears_of_it(ws_system: WsSystem) -> None:
    await ws_system.start_gateway()
    ws = await RawWebSocket.connect(ws_system.gateway_port, "/ws/echo", {})
    assert ws.status == 401
    assert "application/problem+json" in ws.head
    ws.close()
    bad = await RawWebSocket.connect(ws_system.gateway_port, "/ws/echo", {"x-api-key": "wrong"})
    assert bad.status == 401
    bad.close()
    assert ws_system.report()["handshakes"] == []


async def test_the_upgrade_request_carries_the_secret_and_never_the_key(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway()
    forged = {**KEY, "x-gateway-secret": "forged-by-the-client", "X-Consumer-Name": "admin"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_system.url + "/ws/echo", headers=forged) as ws,
    ):
        await ws.send_str("hi")
        assert (await ws.receive(timeout=10)).data == "hi"
    headers = ws_system.report()["handshakes"][0]["headers"]
    names = [name.lower() for name, _ in headers]
    seen = {name.lower(): value for name, value in headers}
    assert names.count("x-gateway-secret") == 1
    assert seen["x-gateway-secret"] == TEST_SECRET
    assert seen["x-consumer-name"] == "demo"
    assert "x-api-key" not in names
    assert DEMO_KEY not in json.dumps(headers)
    assert seen["upgrade"] == "websocket"


async def test_a_browser_may_present_the_key_as_a_subprotocol_where_the_route_allows_it(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway(websocket={"key_protocol": True})
    carrier = f"x-api-key.{DEMO_KEY}"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_system.url + "/ws/echo", protocols=(carrier, "chat.v2")) as ws,
    ):
        assert ws.protocol == "chat.v2"
    headers = ws_system.report()["handshakes"][0]["headers"]
    assert dict(headers)["Sec-WebSocket-Protocol"] == "chat.v2"
    assert DEMO_KEY not in json.dumps(headers)
    assert ws_system.gateway is not None
    assert DEMO_KEY not in ws_system.gateway.log()
    # A wrong key in the carrier is refused like a wrong header.
    bad = await RawWebSocket.connect(
        ws_system.gateway_port, "/ws/echo", {"Sec-WebSocket-Protocol": "x-api-key.nope, chat.v2"}
    )
    assert bad.status == 401
    bad.close()


async def test_the_key_as_a_subprotocol_is_refused_where_the_route_does_not_allow_it(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway()
    ws = await RawWebSocket.connect(
        ws_system.gateway_port, "/ws/echo", {"Sec-WebSocket-Protocol": f"x-api-key.{DEMO_KEY}"}
    )
    assert ws.status == 401
    ws.close()
    assert ws_system.report()["handshakes"] == []


async def test_a_101_for_another_key_or_protocol_is_a_502_and_a_refusal_is_relayed(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway()
    for path, status in (("/raw/bad-accept", 502), ("/raw/h2c", 502), ("/raw/refuse", 403)):
        ws = await RawWebSocket.connect(ws_system.gateway_port, path, KEY)
        assert ws.status == status, path
        ws.close()
    refused = await RawWebSocket.connect(ws_system.gateway_port, "/raw/refuse", KEY)
    assert "X-Why: test" in refused.head
    assert await refused.reader.readexactly(6) == b"no way"
    refused.close()


async def test_h2c_and_other_upgrades_are_never_switched(ws_system: WsSystem) -> None:
    await ws_system.start_gateway()
    reader, writer = await asyncio.open_connection("127.0.0.1", ws_system.gateway_port)
    writer.write(
        f"GET /ws/echo HTTP/1.1\r\nHost: x\r\nx-api-key: {DEMO_KEY}\r\n"
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
        "HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n".encode()
    )
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    writer.close()
    # The backend got a plain GET (it answers 400: no WebSocket handshake), never a switch.
    assert not head.startswith("HTTP/1.1 101")
    seen = {k.lower(): v for k, v in ws_system.report()["handshakes"][0]["headers"]}
    assert "upgrade" not in seen
    assert "http2-settings" not in seen


async def test_a_client_that_stops_reading_pauses_the_backend_and_memory_stays_flat(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway()
    before = ws_system.gateway_rss()
    ws = await RawWebSocket.connect(ws_system.gateway_port, "/ws/flood", KEY)
    assert ws.status == 101
    # Never read: the backend's sends must stop (socket buffers fill, the gateway pauses).
    sent: list[int] = []

    def stalled() -> bool:
        sent.append(ws_system.report()["flood_sent"])
        return len(sent) > 20 and sent[-1] == sent[-20] > 0

    await eventually(stalled, "the backend to be paused", timeout=60)
    assert sent[-1] < 64 << 20, "the backend kept sending: nothing paused it"
    grown = ws_system.gateway_rss() - before
    print(f"backend paused after {sent[-1] >> 10} KiB; gateway RSS grew {grown >> 10} KiB")
    assert grown < 8 << 20, f"the gateway grew by {grown} bytes for one paused tunnel"
    # Reading again resumes the flow.
    for _ in range(200):
        await ws.read_frame()
    await eventually(lambda: ws_system.report()["flood_sent"] > sent[-1], "the flow to resume")
    ws.close()


async def test_1000_idle_websockets_and_memory_per_connection(ws_system: WsSystem) -> None:
    await ws_system.start_gateway()
    count = 1000
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        # One warm-up tunnel, so one-off allocations do not count as per-connection memory.
        warm = await session.ws_connect(ws_system.url + "/ws/idle", headers=KEY)
        await eventually(lambda: ws_system.report()["open"] == 1, "the first tunnel")
        before = ws_system.gateway_rss()
        sockets = []
        for _ in range(count):
            sockets.append(await session.ws_connect(ws_system.url + "/ws/idle", headers=KEY))
        await eventually(lambda: ws_system.report()["open"] == count + 1, "every tunnel open")
        per_connection = (ws_system.gateway_rss() - before) / count
        print(f"gateway memory per idle WebSocket: {per_connection / 1024:.1f} KiB")
        assert per_connection < 64 << 10
        # Every one of them still works.
        for ws in sockets[:: count // 10]:
            await ws.send_str("ping")
        await asyncio.gather(*(ws.close() for ws in [warm, *sockets]))
        await eventually(lambda: ws_system.report()["open"] == 0, "every tunnel closed")


async def test_sigterm_closes_tunnels_1001_at_both_ends_within_the_grace_period(
    ws_system: WsSystem,
) -> None:
    await ws_system.start_gateway({"shutdown": {"drain_delay": 0.1, "grace": 20}})
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_system.url + "/ws/idle", headers=KEY) as ws,
    ):
        await eventually(lambda: ws_system.report()["open"] == 1, "the tunnel")
        assert ws_system.gateway is not None
        os.kill(ws_system.gateway.popen.pid, signal.SIGTERM)
        # Well before the 20 s grace period: tunnels are closed as soon as the listener is.
        msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE
        assert msg.data == 1001
    # The backend's close goes out at the same time as the client's: wait for its record.
    await eventually(lambda: ws_system.report()["closes"] == [[1001, ""]], "the backend's 1001")
    assert ws_system.gateway.popen.wait(15) == 0


async def test_a_killed_backend_closes_the_client_at_once(ws_system: WsSystem) -> None:
    await ws_system.start_gateway(websocket={"idle_timeout": 120})
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_system.url + "/ws/idle", headers=KEY) as ws,
    ):
        await eventually(lambda: ws_system.report()["open"] == 1, "the tunnel")
        assert ws_system.backend is not None
        os.killpg(ws_system.backend.popen.pid, signal.SIGKILL)
        msg = await ws.receive(timeout=10)
        assert msg.type == WSMsgType.CLOSE
        assert msg.data == 1011


async def test_idle_tunnels_are_closed_1001(ws_system: WsSystem) -> None:
    await ws_system.start_gateway(websocket={"idle_timeout": 0.5})
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_system.url + "/ws/idle", headers=KEY) as ws,
    ):
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1001)
    await eventually(lambda: ws_system.report()["closes"] == [[1001, ""]], "the backend's close")


async def test_past_max_connections_a_handshake_gets_503(ws_system: WsSystem) -> None:
    await ws_system.start_gateway(websocket={"max_connections": 2})
    async with aiohttp.ClientSession() as session:
        first = await session.ws_connect(ws_system.url + "/ws/idle", headers=KEY)
        second = await session.ws_connect(ws_system.url + "/ws/idle", headers=KEY)
        third = await RawWebSocket.connect(ws_system.gateway_port, "/ws/idle", KEY)
        assert third.status == 503
        assert "Retry-After" in third.head
        third.close()
        await first.close()
        await eventually(lambda: ws_system.report()["open"] == 1, "one tunnel closed")
        again = await session.ws_connect(ws_system.url + "/ws/idle", headers=KEY)
        await asyncio.gather(second.close(), again.close())


async def test_a_reload_leaves_open_tunnels_alone(ws_system: WsSystem) -> None:
    await ws_system.start_gateway()
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_system.url + "/ws/echo", headers=KEY) as ws,
    ):
        assert ws_system.gateway is not None
        config = ws_system.workdir / "gateway.yaml"
        # The new config drops the route the tunnel came by.
        config.write_text(config.read_text().replace("prefix: /ws", "prefix: /ws-renamed"))
        os.kill(ws_system.gateway.popen.pid, signal.SIGHUP)
        gateway = ws_system.gateway
        await eventually(lambda: "config reloaded" in gateway.log(), "the reload")
        await ws.send_str("still here")
        assert (await ws.receive(timeout=10)).data == "still here"
        # New handshakes see the new config.
        refused = await RawWebSocket.connect(ws_system.gateway_port, "/ws/echo", KEY)
        assert refused.status == 404
        refused.close()


async def test_tunnels_show_in_the_metrics(ws_system: WsSystem) -> None:
    await ws_system.start_gateway()
    async with aiohttp.ClientSession() as session:

        async def metrics() -> str:
            async with session.get(ws_system.url + "/metrics") as resp:
                assert resp.status == 200
                return await resp.text()

        async with session.ws_connect(ws_system.url + "/ws/echo", headers=KEY) as ws:
            await ws.send_str("x" * 1000)
            assert (await ws.receive(timeout=10)).data == "x" * 1000
            assert 'gateway_websockets_open{route="/ws"} 1' in await metrics()

        async def counted() -> bool:
            text = await metrics()
            return (
                'gateway_websockets_open{route="/ws"} 0' in text
                and 'route="/ws",method="GET",code="101",source="upstream"} 1' in text
            )

        await eventually(counted, "the closed tunnel in the metrics")
        lines = (await metrics()).splitlines()
    sent = [line for line in lines if line.startswith('gateway_bytes_total{route="/ws"')]
    assert all(int(float(line.split()[-1])) > 1000 for line in sent) and len(sent) == 2


async def test_under_gunicorn_tunnels_work_and_drain_with_1001(ws_system: WsSystem) -> None:
    await ws_system.start_gateway({"shutdown": {"drain_delay": 0.1, "grace": 20}}, workers=1)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(ws_system.url + "/ws/echo", headers=KEY) as ws,
    ):
        await ws.send_bytes(b"\x00\x01" * 40000)
        assert (await ws.receive(timeout=10)).data == b"\x00\x01" * 40000
        assert ws_system.gateway is not None
        ws_system.gateway.send(signal.SIGTERM)
        msg = await ws.receive(timeout=10)
        assert (msg.type, msg.data) == (WSMsgType.CLOSE, 1001)
    assert await ws_system.gateway.exited(30) == 0


async def test_a_handshake_is_held_to_route_access_and_rate_limits(ws_system: WsSystem) -> None:
    key = digest_of(DEMO_KEY.encode()).hex()
    await ws_system.start_gateway(
        {
            "consumers": [
                {"name": "demo", "keys_sha256": [key], "plan": "tight", "routes": ["/ws"]}
            ],
            "plans": {"tight": {"rate": {"limit": 1, "per": "1m", "burst": 1}}},
        }
    )
    outside = await RawWebSocket.connect(ws_system.gateway_port, "/raw/echo", KEY)
    assert outside.status == 403
    outside.close()
    first = await RawWebSocket.connect(ws_system.gateway_port, "/ws/echo", KEY)
    assert first.status == 101
    second = await RawWebSocket.connect(ws_system.gateway_port, "/ws/echo", KEY)
    assert second.status == 429
    assert "Retry-After" in second.head
    second.close()
    first.close()
    # Only the handshake that was allowed reached a backend.
    assert len(ws_system.report()["handshakes"]) == 1
