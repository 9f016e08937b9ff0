"""A fake backend process for the WebSocket and stream tests; `GET /report` says what it saw.

Run: python -m tests.support.ws_backend --port P --raw-port R

On `--port` (aiohttp): /ws/echo echoes messages (subprotocol `chat.v2` when offered),
/ws/close closes with ?code=&reason=, /ws/flood sends 64 KiB messages as fast as it may,
/ws/idle holds the connection, /sse/events, /sse/heartbeat and /sse/quiet stream events.
On `--raw-port`: a frame-level echo that sends every frame back with the same FIN bit and
opcode, so fragments can be seen to arrive as they were sent.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import time
from typing import Any

from aiohttp import WSMsgType, web

ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
REPORT: web.AppKey[dict[str, Any]] = web.AppKey("report", dict)


def _report(request: web.Request) -> dict[str, Any]:
    return request.app[REPORT]


def _record_handshake(request: web.Request) -> None:
    _report(request)["handshakes"].append(
        {"path": request.path, "headers": [[k, v] for k, v in request.headers.items()]}
    )


async def echo(request: web.Request) -> web.WebSocketResponse:
    _record_handshake(request)
    ws = web.WebSocketResponse(protocols=("chat.v2",), max_msg_size=0, autoclose=False)
    await ws.prepare(request)
    # Not `async for`: it ends at a CLOSE without showing it.
    while not ws.closed:
        msg = await ws.receive()
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
        elif msg.type == WSMsgType.CLOSE:
            _report(request)["closes"].append([msg.data, msg.extra])
            await ws.close(code=msg.data, message=(msg.extra or "").encode())
        else:
            break
    return ws


async def close(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    code = int(request.query["code"])
    await ws.close(code=code, message=request.query["reason"].encode())
    return ws


async def flood(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    chunk = b"\x00" * 65536
    report = _report(request)
    while not ws.closed:
        await ws.send_bytes(chunk)
        report["flood_sent"] += len(chunk)
    return ws


async def idle(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(autoclose=False)
    await ws.prepare(request)
    report = _report(request)
    report["open"] += 1
    try:
        while not ws.closed:
            msg = await ws.receive()
            if msg.type == WSMsgType.CLOSE:
                report["closes"].append([msg.data, msg.extra])
                await ws.close()
            elif msg.type in (WSMsgType.CLOSED, WSMsgType.ERROR):
                break
    finally:
        report["open"] -= 1
    return ws


async def _sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    return response


async def sse_events(request: web.Request) -> web.StreamResponse:
    """?n events, ?gap seconds apart, each carrying the time it was sent."""
    response = await _sse(request)
    for i in range(int(request.query["n"])):
        await asyncio.sleep(float(request.query["gap"]))
        await response.write(f"id: {i}\ndata: {time.time()!r}\n\n".encode())
    await response.write_eof()
    return response


async def sse_heartbeat(request: web.Request) -> web.StreamResponse:
    """?beats comments ?gap seconds apart, then one event and the end."""
    response = await _sse(request)
    for _ in range(int(request.query["beats"])):
        await asyncio.sleep(float(request.query["gap"]))
        await response.write(b": heartbeat\n\n")
    await response.write(b"data: done\n\n")
    await response.write_eof()
    return response


async def sse_quiet(request: web.Request) -> web.StreamResponse:
    """One event, then silence until the connection is gone (the handler is cancelled)."""
    response = await _sse(request)
    await response.write(b"data: hello\n\n")
    try:
        await asyncio.Event().wait()
    finally:
        _report(request)["quiet_closed"] += 1
    return response


async def report(request: web.Request) -> web.Response:
    return web.json_response(_report(request))


async def raw_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        headers = {}
        for line in head.decode().split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        path = head.split(b" ", 2)[1]
        if path.endswith(b"/refuse"):
            writer.write(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\nX-Why: test\r\n\r\nno way"
            )
            return
        accept = base64.b64encode(
            hashlib.sha1(headers["sec-websocket-key"].encode() + ACCEPT_GUID).digest()  # noqa: S324
        ).decode()
        if path.endswith(b"/bad-accept"):
            accept = base64.b64encode(b"\x00" * 20).decode()
        if path.endswith(b"/h2c"):
            writer.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
            )
            return
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        while True:
            first, second = await reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(await reader.readexactly(2), "big")
            elif length == 127:
                length = int.from_bytes(await reader.readexactly(8), "big")
            mask = await reader.readexactly(4) if second & 0x80 else b"\x00" * 4
            payload = unmask(await reader.readexactly(length), mask)
            writer.write(_frame_head(first, length) + payload)
            await writer.drain()
            if first & 0x0F == 0x8:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def unmask(data: bytes, mask: bytes) -> bytes:
    size = len(data)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def _frame_head(first: int, length: int) -> bytes:
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


async def serve(port: int, raw_port: int) -> None:
    app = web.Application()
    app[REPORT] = {"handshakes": [], "closes": [], "flood_sent": 0, "open": 0, "quiet_closed": 0}
    app.router.add_get("/ws/echo", echo)
    app.router.add_get("/ws/close", close)
    app.router.add_get("/ws/flood", flood)
    app.router.add_get("/ws/idle", idle)
    app.router.add_get("/sse/events", sse_events)
    app.router.add_get("/sse/heartbeat", sse_heartbeat)
    app.router.add_get("/sse/quiet", sse_quiet)
    app.router.add_get("/report", report)
    # A stream's handler learns that the gateway closed the connection (sse_quiet counts it).
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    # The frame echo first: once --port takes connections, both do.
    raw = await asyncio.start_server(raw_echo, "127.0.0.1", raw_port)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with raw:
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--raw-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.raw_port))


if __name__ == "__main__":
    main()
