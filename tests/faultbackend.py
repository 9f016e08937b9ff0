"""A backend process that misbehaves on request, for fault-injection tests.

Run: python tests/faultbackend.py --port P [--name N] [--keepalive S] [--close-reused] [--hang]
                                    [--reset-uploads]

Every answer names the backend, so a test can tell which target served a request.
  GET /healthz                 200, or the status last set by POST /_fault/health?status=N
  GET /_fault/stats            {"requests": n, "closed_reused": n, "uploads": n}
  GET <any>/big/<n>            n bytes, streamed in 64 KiB chunks
  GET <any>/reset-mid-body     promises 1 MB, sends 10 kB, then resets the connection
  GET <any>/hang               never answers
  <any> <any>                  {"backend", "method", "path", "body_len", "traceparent",
                                "tracestate", "headers"}
--keepalive S     close keep-alive connections idle for S seconds (aiohttp's timer)
--close-reused    close a connection that already served a request when the next request
                  arrives on it, without answering: the keep-alive race, every time
--hang            never answer a request (other than /healthz and /_fault/*)
--reset-uploads   read 64 kB of any request body, then reset the connection
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import struct
import sys
import weakref
from typing import Any

from aiohttp import web

CHUNK = b"0123456789abcdef" * 4096  # 64 KiB


class Fault:
    def __init__(self, args: argparse.Namespace) -> None:
        self.name: str = args.name
        self.close_reused: bool = args.close_reused
        self.hang: bool = args.hang
        self.reset_uploads: bool = args.reset_uploads
        self.health_status = 200
        self.requests = 0
        self.closed_reused = 0
        self.uploads = 0
        self.served: weakref.WeakSet[Any] = weakref.WeakSet()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.endswith("/docs/swagger.json"):
            # The gateway's docs fetcher: no API description here, and not counted.
            raise web.HTTPNotFound()
        if path == "/healthz":
            return web.json_response({"backend": self.name}, status=self.health_status)
        if path == "/_fault/health":
            self.health_status = int(request.query["status"])
            return web.json_response({"backend": self.name})
        if path == "/_fault/stats":
            return web.json_response(
                {
                    "requests": self.requests,
                    "closed_reused": self.closed_reused,
                    "uploads": self.uploads,
                }
            )
        transport = request.transport
        assert transport is not None
        if self.close_reused and transport in self.served:
            self.closed_reused += 1
            transport.close()
            return web.Response()
        self.served.add(transport)
        self.requests += 1
        if self.hang or path.endswith("/hang"):
            await asyncio.sleep(3600)
        tail = path.rsplit("/", 2)
        if tail[-2] == "big":
            return await self._big(request, int(tail[-1]))
        if tail[-1] == "reset-mid-body":
            stream = web.StreamResponse()
            stream.content_length = 1_000_000
            await stream.prepare(request)
            await stream.write(b"y" * 10_000)
            await asyncio.sleep(0.05)
            _reset(transport)
            return stream
        if self.reset_uploads and request.body_exists:
            self.uploads += 1
            got = 0
            while got < 65536:
                chunk = await request.content.readany()
                if not chunk:
                    break
                got += len(chunk)
            _reset(transport)
            return web.Response()
        body = await request.read()
        if body:
            self.uploads += 1
        return web.json_response(
            {
                "backend": self.name,
                "method": request.method,
                "path": request.raw_path,
                "body_len": len(body),
                "traceparent": request.headers.getall("traceparent", []),
                "tracestate": request.headers.getall("tracestate", []),
            }
        )

    async def _big(self, request: web.Request, size: int) -> web.StreamResponse:
        stream = web.StreamResponse()
        stream.content_length = size
        await stream.prepare(request)
        left = size
        while left:
            part = CHUNK if left >= len(CHUNK) else CHUNK[:left]
            await stream.write(part)
            left -= len(part)
        await stream.write_eof()
        return stream


def _reset(transport: Any) -> None:
    """Close with RST, not FIN: what a crashed or killed peer looks like."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="backend")
    parser.add_argument("--keepalive", type=float, default=75.0)
    parser.add_argument("--close-reused", action="store_true")
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--reset-uploads", action="store_true")
    args = parser.parse_args()
    fault = Fault(args)
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", fault.handle)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        keepalive_timeout=args.keepalive,
        access_log=None,
        print=None,
        shutdown_timeout=1.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
