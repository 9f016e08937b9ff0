"""Small in-process upstreams for balancing, health and timeout tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from apigw.shared.reserved import SPEC_PATH

ServerFactory = Callable[..., Awaitable[TestServer]]


@dataclass
class Named:
    """An upstream that answers its name, holds /hold/* until released, and whose /healthz
    answers `health_status`. It records what it saw."""

    name: str
    server: TestServer | None = None
    health_status: int = 200
    health_headers: list[CIMultiDict[str]] = field(default_factory=list)
    served: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    body_errors: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.endswith(SPEC_PATH):
            # The gateway's docs fetcher, not proxied traffic: not counted, and no document.
            raise web.HTTPNotFound()
        if request.path == "/healthz":
            self.health_headers.append(CIMultiDict(request.headers))
            return web.Response(status=self.health_status)
        self.served += 1
        if "/hold/" in request.path:
            await self.release.wait()
        if "/drip" in request.path:
            # Headers at once, then a byte now and then, forever.
            stream = web.StreamResponse()
            await stream.prepare(request)
            try:
                while True:
                    await stream.write(b".")
                    await asyncio.sleep(0.05)
            except (ConnectionError, asyncio.CancelledError):
                # aiohttp's test server cancels a handler whose client went away.
                self.body_errors.append("drip cut")
                raise
        if "/late" in request.path:
            await asyncio.sleep(2)
        try:
            await request.read()
        except (Exception, asyncio.CancelledError) as exc:
            self.body_errors.append(type(exc).__name__)
            raise
        return web.json_response({"backend": self.name})


async def start_named(aiohttp_server: ServerFactory, name: str) -> Named:
    named = Named(name)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", named.handle)
    named.server = await aiohttp_server(app)
    return named
