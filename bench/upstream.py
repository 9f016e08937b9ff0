"""Benchmark upstream: small JSON, big streamed downloads, and an upload sink.

Usage: python bench/upstream.py PORT
"""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

ZEROS = bytes(256 * 1024)


async def small(request: web.Request) -> web.Response:
    return web.json_response({"user_id": 1, "name": "Bench User"})


async def big(request: web.Request) -> web.StreamResponse:
    size = int(request.match_info["size"])
    resp = web.StreamResponse()
    resp.content_length = size
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    left = size
    while left > 0:
        part = ZEROS if left >= len(ZEROS) else ZEROS[:left]
        await resp.write(part)
        left -= len(part)
    return resp


async def upload(request: web.Request) -> web.Response:
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
    return web.json_response({"bytes": total})


def main() -> None:
    app = web.Application()
    app.router.add_get("/users/big/{size}", big)
    app.router.add_get("/users/{user_id}", small)
    app.router.add_post("/orders/upload", upload)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
