"""Paths the gateway and the services answer themselves, never routed to a backend, and the
liveness handler both serve at /healthz."""

from __future__ import annotations

from aiohttp import web

HEALTHZ_PATH = "/healthz"
READYZ_PATH = "/readyz"
DOCS_PATH = "/docs"
# A page that watches the orders feed on a WebSocket through the gateway (apigw/live_page.py).
LIVE_PAGE_PATH = DOCS_PATH + "/live"
# Where aiohttp-swagger3 serves the document of a UI mounted at DOCS_PATH, on every app.
SPEC_PATH = DOCS_PATH + "/swagger.json"
# The admin surface: answered only to clients in `admin.allow`, outside routing and key auth.
METRICS_PATH = "/metrics"
STATUS_PATH = "/status"
STATUS_JSON_PATH = "/status.json"
ADMIN_PATHS = frozenset({METRICS_PATH, STATUS_PATH, STATUS_JSON_PATH})
# No route prefix may fall under one of these.
RESERVED_PATHS = (DOCS_PATH, HEALTHZ_PATH, READYZ_PATH, METRICS_PATH, STATUS_PATH, STATUS_JSON_PATH)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Readiness (the gateway's /readyz) is a separate check."""
    return web.json_response({"status": "ok"})
