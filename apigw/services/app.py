"""What every backend service shares: its app (gateway-secret guard, errors, request ids,
/healthz), and the shapes of its answers (201 with Location, one page of a list with its next link).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware
from yarl import URL

from apigw.config import ServiceSettings, Shutdown
from apigw.shared.appkeys import (
    ACCEPTED_SECRETS_KEY,
    OPEN_PATHS_KEY,
    OPEN_PREFIXES_KEY,
    SERVER_HEADER_KEY,
)
from apigw.shared.headers import DEFAULT_SERVER_HEADER
from apigw.shared.reserved import HEALTHZ_PATH, healthz

# Requests under way when SIGTERM comes get this long to finish, as on the gateway.
SERVICE_GRACE = Shutdown().grace


def make_service_app(
    settings: ServiceSettings,
    middlewares: Sequence[Middleware],
    handler_args: Mapping[str, Any] | None = None,
) -> web.Application:
    """A service app with `middlewares` (the entry point passes middleware.SERVICE_MIDDLEWARES)
    and the server's `handler_args` (the entry point passes the gateway's server_args)."""
    app = web.Application(middlewares=middlewares, handler_args=handler_args)
    app[ACCEPTED_SECRETS_KEY] = tuple(s.encode() for s in settings.accepted_secrets)
    app[SERVER_HEADER_KEY] = DEFAULT_SERVER_HEADER
    # The service's own OpenAPI document is not open: only the gateway reads it.
    app[OPEN_PATHS_KEY] = frozenset({HEALTHZ_PATH})
    app[OPEN_PREFIXES_KEY] = ()
    app.router.add_get(HEALTHZ_PATH, healthz)
    return app


def created(location: str, body: Mapping[str, Any]) -> web.Response:
    return web.json_response(body, status=201, headers={hdrs.LOCATION: location})


def page(
    request: web.Request,
    rows: Sequence[Mapping[str, Any]],
    *,
    limit: int,
    id_field: str,
    filters: Mapping[str, object] | None = None,
) -> web.Response:
    """One page of a list in id order, from up to `limit + 1` rows.

    The extra row only says that a next page exists. Its link is keyset-based (`after` the last
    id shown), so rows inserted or deleted meanwhile never shift or repeat a page. The link is a
    path, so it is equally valid on the service and through the gateway.
    """
    items = list(rows[:limit])
    next_link = None
    headers = {}
    if len(rows) > limit:
        query = {k: str(v) for k, v in (filters or {}).items() if v is not None}
        query.update(limit=str(limit), after=str(items[-1][id_field]))
        next_link = str(URL.build(path=request.path, query=query))
        headers[hdrs.LINK] = f'<{next_link}>; rel="next"'
    return web.json_response({"items": items, "next": next_link}, headers=headers)
