"""The gateway's /docs/live page: a browser watching the orders feed through the gateway."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from apigw.shared.reserved import LIVE_PAGE_PATH

_PAGE = Path(__file__).resolve().parent / "pages" / "live.html"


def setup_live_page(app: web.Application) -> None:
    # Read once at start-up; the page holds no key, the user types it.
    body = _PAGE.read_bytes()

    async def live_page(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    app.router.add_get(LIVE_PAGE_PATH, live_page)
