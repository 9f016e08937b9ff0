"""The peer the gateway is measured against: the least an aiohttp proxy can do.

One pooled ClientSession, a key check, hop-by-hop headers dropped, bodies streamed both ways,
on uvloop: the same code as `aiohttp-min-uv` of the shared side-by-side benchmark
(../shared/bench/peers/aiohttp_minimal.py), so `make bench` needs nothing outside the repo.

Usage: python bench/bare_proxy.py PORT UPSTREAM
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

KEYS = {"secret002oUdaRJA"}
HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "host",
    "x-api-key",
    "content-length",
}
SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    app[SESSION] = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=256), auto_decompress=False
    )
    yield
    await app[SESSION].close()


async def proxy(request: web.Request) -> web.StreamResponse:
    if request.headers.get("x-api-key") not in KEYS:
        return web.json_response({"detail": "Invalid API Key"}, status=401)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
    headers["x-gateway-secret"] = "s"
    body = request.content if request.body_exists else None
    async with request.app[SESSION].request(
        request.method,
        request.app[UPSTREAM] + request.rel_url.raw_path_qs,
        headers=headers,
        data=body,
        allow_redirects=False,
    ) as up:
        out = {k: v for k, v in up.headers.items() if k.lower() not in HOP}
        resp = web.StreamResponse(status=up.status, headers=out)
        if up.content_length is not None:
            resp.content_length = up.content_length
        await resp.prepare(request)
        async for chunk in up.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
        return resp


def main() -> None:
    app = web.Application(client_max_size=0)
    app[UPSTREAM] = sys.argv[2]
    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", proxy)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
