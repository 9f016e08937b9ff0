"""Every typed key the apps store state under, declared in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    import aiosqlite

    from apigw.config import GatewaySettings
    from apigw.health import HealthChecks
    from apigw.keys import Keyring
    from apigw.lifecycle import Lifecycle
    from apigw.observability.exchange import Exchange, Observer
    from apigw.proxy import Proxy
    from apigw.ratelimit.limiter import RateLimiter
    from apigw.reload import Reloader
    from apigw.request_gate import RequestGate
    from apigw.services.order_events import OrderFeed
    from apigw.streaming.streams import LongLived

SETTINGS_KEY: web.AppKey[GatewaySettings] = web.AppKey("settings")
# The Server header value every response carries (names no versions).
SERVER_HEADER_KEY: web.AppKey[str] = web.AppKey("server_header", str)
KEYRING_KEY: web.AppKey[Keyring] = web.AppKey("keyring")
SESSION_KEY: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
PROXY_KEY: web.AppKey[Proxy] = web.AppKey("proxy")
HEALTH_CHECKS_KEY: web.AppKey[HealthChecks] = web.AppKey("health_checks")
LIFECYCLE_KEY: web.AppKey[Lifecycle] = web.AppKey("lifecycle")
RELOADER_KEY: web.AppKey[Reloader] = web.AppKey("reloader")
REQUEST_GATE_KEY: web.AppKey[RequestGate] = web.AppKey("request_gate")
# Streams and WebSocket tunnels under way, with their own cap and drain (apigw.streaming.streams).
LONG_LIVED_KEY: web.AppKey[LongLived] = web.AppKey("long_lived")
RATE_LIMITER_KEY: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
# Metrics, access log and span export of this worker (apigw.observability.exchange).
OBSERVER_KEY: web.AppKey[Observer] = web.AppKey("observer")
# Secrets a service accepts in x-gateway-secret, as bytes for hmac.compare_digest.
ACCEPTED_SECRETS_KEY: web.AppKey[tuple[bytes, ...]] = web.AppKey("accepted_secrets")
# A service's SQLite connection (apigw.services.storage).
DATABASE_KEY: web.AppKey[aiosqlite.Connection] = web.AppKey("database")
# Paths that need neither a client key nor a gateway secret.
# Wakes the orders service's change feeds (apigw.services.order_events).
ORDER_FEED_KEY: web.AppKey[OrderFeed] = web.AppKey("order_feed")
OPEN_PATHS_KEY: web.AppKey[frozenset[str]] = web.AppKey("open_paths")
OPEN_PREFIXES_KEY: web.AppKey[tuple[str, ...]] = web.AppKey("open_prefixes")

REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("request_id", str)
# The client's key came as a WebSocket subprotocol (apigw.streaming.websocket.KEY_PROTOCOL_PREFIX).
KEY_IN_PROTOCOL_KEY: web.RequestKey[bool] = web.RequestKey("key_in_protocol", bool)
# What the gateway records of a request: trace context, route, upstream side, timing.
EXCHANGE_KEY: web.RequestKey[Exchange] = web.RequestKey("exchange")
