"""Forwarding: one pooled ClientSession per worker, bodies streamed both ways, nothing buffered."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import HttpVersion11, hdrs, web
from yarl import URL

from apigw.appkeys import CONSUMER_KEY, PROXY_KEY, REQUEST_ID_KEY, SESSION_KEY, SETTINGS_KEY
from apigw.bodies import RequestBody
from apigw.config import GatewaySettings, PoolSettings
from apigw.errors import GatewayError, problem_response
from apigw.headers import (
    REQUEST_ID_HEADER,
    downstream_response_headers,
    request_id_from,
    upstream_request_headers,
)
from apigw.routing import RouteTable, check_target
from apigw.upstreams import UpstreamPool, make_pool

log = logging.getLogger("apigw.proxy")

FORWARDED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ALLOW = ", ".join(sorted(FORWARDED_METHODS))
# The gateway forwards the client's headers as they are: the session adds none of its own.
_SKIP_AUTO_HEADERS = (hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def make_session(pool: PoolSettings) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=pool.max_connections,
        keepalive_timeout=pool.idle_timeout,
        # Backends are reached by address from the config; caching the lookup is enough.
        ttl_dns_cache=10,
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Bytes go through as the upstream sent them; Content-Encoding stays true.
        auto_decompress=False,
        # One session serves every client: it must never keep or send anyone's cookies.
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=_SKIP_AUTO_HEADERS,
        timeout=aiohttp.ClientTimeout(total=None),
    )


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    session = make_session(app[SETTINGS_KEY].pool)
    app[SESSION_KEY] = session
    yield
    await session.close()


def abort_connection(request: web.BaseRequest) -> None:
    """Cut the client connection, so a broken stream never looks like a complete reply."""
    transport = request.transport
    if transport is not None:
        transport.abort()


class Proxy:
    """The proxying handler, with everything it needs prepared at start-up."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.pools = tuple(make_pool(route) for route in settings.routes)
        self.routes: RouteTable[UpstreamPool] = RouteTable(
            {pool.route.prefix: pool for pool in self.pools}
        )
        self._secret = settings.gateway_secret

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path
        path = check_target(raw)
        pool = self.routes.match(path)
        if pool is None:
            raise GatewayError(404, "No route matches this path.")
        method = request.method  # method_middleware let only FORWARDED_METHODS through
        consumer = request.get(CONSUMER_KEY)
        if consumer is None:
            # Only reachable if a route ever bypassed the client-key middleware.
            raise GatewayError(401, "A valid API key is required in the x-api-key header.")
        target = pool.pick()
        request_id = request[REQUEST_ID_KEY]
        headers = upstream_request_headers(
            request.headers,
            secret=self._secret,
            consumer=consumer,
            request_id=request_id,
            client_ip=request.remote,
            scheme=request.scheme,
        )
        body = None
        if request.body_exists:
            route = pool.route
            length = request.content_length
            if length is not None:
                if route.max_body_bytes is not None and length > route.max_body_bytes:
                    raise GatewayError(
                        413,
                        f"The request body is larger than {route.max_body_bytes} bytes.",
                        close=True,
                    )
                # The server framed the body by this length, so exactly this many bytes follow.
                headers[hdrs.CONTENT_LENGTH] = str(length)
            body = RequestBody(
                request.content,
                max_bytes=route.max_body_bytes,
                idle_timeout=route.timeouts.body_idle,
            )
            if (
                request.version == HttpVersion11
                and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue"
            ):
                # Only now, with the key accepted and the route found, may the client send.
                await request.writer.write(_CONTINUE)
                request.writer.output_size = 0
        session = request.app[SESSION_KEY]
        url = URL(target.base + raw, encoded=True)
        target.in_flight += 1
        try:
            upstream = await session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                timeout=pool.timeout,
            )
        except Exception as exc:
            # A body stopped by its own limits surfaces as a connection error: say why.
            if body is not None and body.error is not None:
                raise body.error from None
            raise self._upstream_error(exc, target.base, request_id) from None
        finally:
            target.in_flight -= 1
        try:
            return await self._relay(request, upstream, request_id, target.base)
        finally:
            upstream.release()

    @staticmethod
    def _upstream_error(exc: Exception, base: str, request_id: str) -> Exception:
        if isinstance(exc, TimeoutError):
            return GatewayError(504, "The upstream did not answer in time.")
        if isinstance(exc, (aiohttp.ClientError, OSError)):
            log.warning(
                "upstream %s unreachable for request %s: %s", base, request_id, type(exc).__name__
            )
            return GatewayError(502, "The upstream could not be reached.")
        return exc

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        request_id: str,
        base: str,
    ) -> web.StreamResponse:
        if upstream.status == 101:
            raise GatewayError(502, "The upstream tried to switch protocols.")
        response = web.StreamResponse(
            status=upstream.status,
            reason=upstream.reason,
            headers=downstream_response_headers(upstream.headers, request_id),
        )
        await response.prepare(request)
        read = upstream.content.readany
        while True:
            try:
                chunk = await read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning(
                    "upstream %s failed mid-response for request %s: %s; aborting the client",
                    base,
                    request_id,
                    type(exc).__name__,
                )
                abort_connection(request)
                return response
            if not chunk:
                break
            await response.write(chunk)
        await response.write_eof()
        return response


def setup_proxy(app: web.Application) -> Proxy:
    proxy = Proxy(app[SETTINGS_KEY])
    app[PROXY_KEY] = proxy
    app.cleanup_ctx.append(session_ctx)
    return proxy


async def defer_continue(request: web.Request) -> web.Response | None:
    """Expect handler of the proxy route: never answers 100 before the key is checked.

    It runs before the middlewares, so it answers an unknown expectation itself.
    """
    expect = request.headers.get(hdrs.EXPECT, "")
    if expect.lower() == "100-continue" or request.version != HttpVersion11:
        return None
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    return problem_response(417, "Only 'Expect: 100-continue' is supported.", request_id)
