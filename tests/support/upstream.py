"""The one fake upstream: it records what the gateway sent and misbehaves on request.

In-process: `await start_upstream(aiohttp_server, name="a", ...)` (the `make_upstream` and
`echo_upstream` fixtures). As a real process, for the system tests:
    python -m tests.support.upstream --port P [--name N] [--keepalive S] [--close-reused]
                                     [--hang] [--reset-uploads]

The last path segment picks the answer (under any route prefix):
  hold...          waits until `release` is set (or forever): a request held in flight
  drip             headers at once, then a byte every 50 ms, forever
  big-N            N bytes, streamed in 64 KiB chunks
  cut              promises 1 MB, sends 10 kB, then closes the connection
  reset            promises 1 MB, sends 10 kB, then resets the connection (RST)
  status-N         an empty-ish answer with status N
  cookies          201 "Made It" with two Set-Cookie headers and X-Custom
  redirect         302 to another host
  gzip             a gzip body with Content-Encoding, as is
  hop              hop-by-hop headers and a leaked secret, which must not come back
  anything else    {"backend", "method", "raw_path", "body_len", "body_sha256", "traceparent",
                    "tracestate"}
Never the request headers: the hostile suite searches every answer for credentials.
/healthz answers `health_status`; /_upstream/stats answers the counters (for processes).
Options: `close_reused` closes a reused connection when its next request arrives, unanswered
(the keep-alive race, every time); `hang` holds every request; `reset_uploads` reads 64 kB of
a body, then resets the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import socket
import struct
import sys
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from apigw.shared.reserved import SPEC_PATH
from tests.support.apps import ServerFactory

CHUNK = b"0123456789abcdef" * 4096  # 64 KiB
# Roomier than the gateway's limits, so that whatever the gateway accepts arrives here.
HANDLER_ARGS = {"max_line_size": 65536, "max_field_size": 65536, "max_headers": 1000}


@dataclass
class Seen:
    """A request the upstream received whole."""

    method: str
    raw_path: str
    headers: CIMultiDict[str]
    body: bytes
    peer: tuple[str, int]  # the gateway's end of the upstream connection


@dataclass
class Upstream:
    name: str = "upstream"
    close_reused: bool = False
    hang: bool = False
    reset_uploads: bool = False
    health_status: int = 200
    server: TestServer | None = None
    seen: list[Seen] = field(default_factory=list)  # requests received whole, in order
    requests: int = 0  # requests that arrived (/healthz and the docs fetch not counted)
    held: int = 0  # requests waiting for `release` now
    uploads: int = 0  # requests with a body that was read whole or cut
    closed_reused: int = 0
    interrupted: list[str] = field(default_factory=list)  # requests that ended early, and how
    health_headers: list[CIMultiDict[str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    _served: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 30, handler_args=HANDLER_ARGS)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith(SPEC_PATH):
            # The gateway's start-up fetch of the backend's document: no document here.
            raise web.HTTPNotFound()
        if request.path == "/healthz":
            self.health_headers.append(CIMultiDict(request.headers))
            return web.json_response({"backend": self.name}, status=self.health_status)
        if request.path == "/_upstream/stats":
            stats = {"requests": self.requests, "uploads": self.uploads}
            return web.json_response({**stats, "closed_reused": self.closed_reused})
        transport = request.transport
        assert transport is not None
        if self.close_reused and transport in self._served:
            self.closed_reused += 1
            transport.close()
            return web.Response()
        self._served.add(transport)
        self.requests += 1
        tail = request.path.rsplit("/", 1)[-1]
        if self.hang or tail.startswith("hold"):
            await self._hold()
        if tail == "drip":
            return await self._drip(request)
        if tail in ("cut", "reset"):
            stream = web.StreamResponse()
            stream.content_length = 1_000_000
            await stream.prepare(request)
            await stream.write(b"y" * 10_000)
            if tail == "reset":
                _reset(transport)
            else:
                transport.abort()
            return stream
        if self.reset_uploads and request.body_exists:
            self.uploads += 1
            got = 0
            while got < 65536 and (chunk := await request.content.readany()):
                got += len(chunk)
            _reset(transport)
            return web.Response()
        try:
            body = await request.read()
        except (Exception, asyncio.CancelledError) as exc:
            # aiohttp's server cancels a handler whose client (the gateway) went away.
            self.interrupted.append(type(exc).__name__)
            raise
        self.uploads += bool(body)
        peer = transport.get_extra_info("peername")
        self.seen.append(
            Seen(request.method, request.raw_path, CIMultiDict(request.headers), body, peer)
        )
        return await self._answer(request, tail, body)

    async def _hold(self) -> None:
        self.held += 1
        try:
            await self.release.wait()
        finally:
            self.held -= 1

    async def _drip(self, request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse()
        await stream.prepare(request)
        try:
            while True:
                await stream.write(b".")
                # The drip's pace, not synchronisation: a byte now and then, forever.
                await asyncio.sleep(0.05)
        except (ConnectionError, asyncio.CancelledError):
            self.interrupted.append("drip")
            raise

    async def _answer(self, request: web.Request, tail: str, body: bytes) -> web.StreamResponse:
        if tail.startswith("big-"):
            return await self._big(request, int(tail.removeprefix("big-")))
        if tail.startswith("status-"):
            return web.Response(status=int(tail.removeprefix("status-")), text="status")
        if tail == "cookies":
            resp = web.Response(status=201, reason="Made It", text="ok")
            resp.headers.add("Set-Cookie", "a=1; Path=/")
            resp.headers.add("Set-Cookie", "b=2; Path=/")
            resp.headers["X-Custom"] = "kept"
            return resp
        if tail == "redirect":
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        if tail == "gzip":
            return web.Response(
                body=gzip.compress(b"compressed payload"),
                headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
            )
        if tail == "hop":
            return web.Response(
                text="hop",
                headers={
                    "Connection": "keep-alive, X-Upstream-Private",
                    "X-Upstream-Private": "internal",
                    "Keep-Alive": "timeout=5",
                    "X-Gateway-Secret": "leaked-by-a-bad-backend",
                    "Proxy-Authenticate": "Basic",
                },
            )
        return web.json_response(
            {
                "backend": self.name,
                "method": request.method,
                "raw_path": request.raw_path,
                "body_len": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                # Trace context is no credential: the system tests read what the backend got.
                "traceparent": request.headers.getall("traceparent", []),
                "tracestate": request.headers.getall("tracestate", []),
            }
        )

    async def _big(self, request: web.Request, size: int) -> web.StreamResponse:
        stream = web.StreamResponse()
        stream.content_length = size
        await stream.prepare(request)
        left = size if request.method != "HEAD" else 0
        while left:
            part = CHUNK[: min(left, len(CHUNK))]
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


UpstreamFactory = Callable[..., Awaitable["Upstream"]]  # the make_upstream fixture


async def start_upstream(aiohttp_server: ServerFactory, **options: Any) -> Upstream:
    upstream = Upstream(**options)
    upstream.server = await aiohttp_server(upstream.app())
    return upstream


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="upstream")
    parser.add_argument("--keepalive", type=float, default=75.0)
    parser.add_argument("--close-reused", action="store_true")
    parser.add_argument("--hang", action="store_true")
    parser.add_argument("--reset-uploads", action="store_true")
    args = parser.parse_args()
    upstream = Upstream(
        args.name, close_reused=args.close_reused, hang=args.hang, reset_uploads=args.reset_uploads
    )
    web.run_app(
        upstream.app(),
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
