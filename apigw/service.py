"""What every backend service shares: the gateway-secret guard, errors, request ids, /healthz."""

from __future__ import annotations

from aiohttp import web

from apigw.appkeys import (
    ACCEPTED_SECRETS_KEY,
    OPEN_PATHS_KEY,
    OPEN_PREFIXES_KEY,
    SERVICE_SETTINGS_KEY,
)
from apigw.config import ServiceSettings
from apigw.errors import GatewayError
from middleware import SERVICE_MIDDLEWARES


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def make_service_app(settings: ServiceSettings) -> web.Application:
    app = web.Application(middlewares=SERVICE_MIDDLEWARES)
    app[SERVICE_SETTINGS_KEY] = settings
    app[ACCEPTED_SECRETS_KEY] = tuple(s.encode() for s in settings.accepted_secrets)
    app[OPEN_PATHS_KEY] = frozenset({"/healthz"})
    app[OPEN_PREFIXES_KEY] = ()
    app.router.add_get("/healthz", healthz)
    return app


def int_id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise GatewayError(400, f"{name} must be a positive integer.")
    return int(raw)
