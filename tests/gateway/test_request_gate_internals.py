"""The request gate reads the parsed head from aiohttp's message, not its request properties:
they must be the same values, whichever parser (C or pure Python) made the message."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.support.apps import ServerFactory
from tests.support.wire import exchange


async def test_the_gate_reads_what_the_request_properties_return(
    aiohttp_server: ServerFactory,
) -> None:
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        message = request._message
        seen.append(
            {
                "version": (message.version, request.version),
                "method": (message.method, request.method),
                "target": (message.path, request.raw_path),
                "raw_headers": (message.raw_headers, request.raw_headers),
                "headers": (message.headers, request.headers),
            }
        )
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    assert server.port is not None
    head = (
        b"PATCH /a/%2e/b?x=%20&y HTTP/1.0\r\nHost: example.test:8080\r\n"
        b"X-Twice: 1\r\nx-twice: 2\r\nContent-Length: 0\r\n\r\n"
    )
    assert (await exchange(server.port, head)).reply.status == 200
    assert seen and all(ours == theirs for ours, theirs in seen[0].values())
