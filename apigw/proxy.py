"""Forwarding: one pooled ClientSession per worker, bodies streamed both ways, nothing buffered."""

from __future__ import annotations

import logging
from asyncio import sleep
from collections.abc import AsyncIterator, Awaitable
from time import monotonic, perf_counter

import aiohttp
from aiohttp import HttpVersion11, hdrs, web
from multidict import CIMultiDict

from apigw.answer import WholeAnswer
from apigw.bodies import RequestBody
from apigw.client import UpstreamCall, make_session
from apigw.config import GatewaySettings
from apigw.observability.exchange import Exchange
from apigw.observability.metrics import Metrics, RouteStats
from apigw.ratelimit.limiter import RateLimiter
from apigw.ratelimit.policies import policy_sets
from apigw.retries import may_retry
from apigw.routing import RouteTable, check_path, check_target
from apigw.shared.appkeys import (
    EXCHANGE_KEY,
    KEY_IN_PROTOCOL_KEY,
    LONG_LIVED_KEY,
    OBSERVER_KEY,
    PROXY_KEY,
    SESSION_KEY,
    SETTINGS_KEY,
)
from apigw.shared.errors import ProblemError, abort_connection, problem_response
from apigw.shared.headers import (
    RATELIMIT_HEADER,
    RATELIMIT_POLICY_HEADER,
    REQUEST_ID_HEADER,
    downstream_response_headers,
    line_pairs,
    request_id_from,
    upstream_request_headers,
    with_traceparent,
)
from apigw.streaming.streams import relay_stream
from apigw.streaming.websocket import is_websocket_upgrade
from apigw.upstreams import Target, UpstreamPool

log = logging.getLogger("apigw.proxy")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A chunk this large means a body streaming in as fast as the upstream can send it.
_LARGE_CHUNK = 2**16
NO_ROUTE = "No route matches this path."


async def session_ctx(app: web.Application) -> AsyncIterator[None]:
    session = make_session(app[SETTINGS_KEY].pool)
    app[SESSION_KEY] = session
    app[PROXY_KEY].call = UpstreamCall(session)
    yield
    await session.close()


class ProxyState:
    """One generation of the config as the proxy uses it; a reload swaps in a whole new one."""

    __slots__ = ("policies", "pools", "routes", "secret", "server", "settings")

    def __init__(self, settings: GatewaySettings, metrics: Metrics) -> None:
        self.settings = settings
        limits = settings.rate_limits
        # Route prefix -> plan name -> what a consumer of that plan is held to on the route.
        self.policies = policy_sets(
            settings.plans, settings.routes, limits.workers if limits.divide_by_workers else 1
        )
        self.pools = tuple(
            UpstreamPool(route, metrics.route(route.prefix)) for route in settings.routes
        )
        self.routes: RouteTable[UpstreamPool] = RouteTable(
            {pool.route.prefix: pool for pool in self.pools}
        )
        self.secret = settings.gateway_secret
        self.server = settings.server_header


class Proxy:
    """The proxying handler, with everything it needs prepared at start-up or reload."""

    def __init__(self, settings: GatewaySettings, metrics: Metrics, limiter: RateLimiter) -> None:
        self.metrics = metrics
        self.limiter = limiter
        self.state = ProxyState(settings, metrics)
        # Set once SIGTERM starts the drain (lifecycle.py): answers then close their connection.
        self.draining = False
        # The call on the pooled session, set by session_ctx (no app lookup per request).
        self.call: UpstreamCall | None = None

    def swap(self, settings: GatewaySettings) -> ProxyState:
        """Serve new requests with `settings`; requests under way keep the state they took."""
        self.state = ProxyState(settings, self.metrics)
        return self.state

    def route_stats(self, path: str) -> RouteStats | None:
        """The stats of the route a raw path would take (for requests answered before routing,
        such as a 401); None when no route matches or the path is not one the proxy takes."""
        try:
            pool = self.state.routes.match(check_path(path))
        except ProblemError:
            return None
        return None if pool is None else pool.stats

    async def handle(self, request: web.Request) -> web.StreamResponse:
        # Read once: this request sees one generation even if a reload lands meanwhile.
        state = self.state
        raw = request.raw_path
        path = check_target(raw)
        pool = state.routes.match(path)
        if pool is None:
            raise ProblemError(404, NO_ROUTE)
        exchange = request[EXCHANGE_KEY]
        consumer = exchange.consumer
        if consumer is None:
            # Only reachable if a route ever bypassed the client-key middleware.
            raise ProblemError(401, "A valid API key is required in the x-api-key header.")
        stats = exchange.stats = pool.stats
        stats.in_flight += 1  # front_middleware takes it back when the answer is done
        if consumer.routes is not None and pool.route.prefix not in consumer.routes:
            # Before any limit is charged: a refused route costs the consumer nothing.
            raise ProblemError(403, "This API key may not call this route.")
        try:
            policies = state.policies[pool.route.prefix][consumer.plan]
        except KeyError:
            # The key was checked against the config before a reload that removed its plan.
            raise ProblemError(
                401, "A valid API key is required in the x-api-key header."
            ) from None
        fields = None
        if policies is not None:
            limiter = self.limiter
            if limiter.is_local:
                # No round trip, so no await: the cheapest path for the default store.
                fields = limiter.local.admit(consumer.name, policies.local)
            else:
                fields = await limiter.admit(consumer.name, policies)
        try:
            headers, lines = upstream_request_headers(
                request.headers,
                secret=state.secret,
                consumer=consumer.name,
                request_id=exchange.request_id,
                client_ip=request.remote,
                scheme=request.scheme,
                traceparent=exchange.traceparent,
                tracestate=exchange.tracestate,
                plan=consumer.plan,
            )
            if hdrs.UPGRADE in request.headers and is_websocket_upgrade(request.headers):
                if pool.route.websocket.enabled:
                    # Loaded by the first WebSocket: a worker that never sees one does not
                    # carry the tunnel's code.
                    from apigw.streaming.upgrade import tunnel_websocket

                    headers.extend(line_pairs(lines))
                    registry = request.app[LONG_LIVED_KEY]
                    return await tunnel_websocket(request, pool, headers, registry, state.server)
                if request.get(KEY_IN_PROTOCOL_KEY):
                    raise ProblemError(401, "A valid API key is required in the x-api-key header.")
            # Streams known by their path (long polls) wait for their answer with the stream
            # idle timeout, and no total (apigw/streams.py).
            streaming = bool(pool.stream_paths) and pool.is_stream_path(path)
            # The whole-request limit is checked at every chunk both ways and before a retry;
            # every single wait is capped by it too (make_client_timeout). No timer per request.
            deadline = None if pool.total is None or streaming else monotonic() + pool.total
            body = None
            if request.body_exists:
                route = pool.route
                length = request.content_length
                if length is not None:
                    if route.max_body_bytes is not None and length > route.max_body_bytes:
                        raise ProblemError(
                            413,
                            f"The request body is larger than {route.max_body_bytes} bytes.",
                            close=True,
                        )
                    # The server framed the body by this length, so exactly this many bytes follow.
                    headers[hdrs.CONTENT_LENGTH] = str(length)
                body = exchange.body = RequestBody(
                    request.content,
                    max_bytes=route.max_body_bytes,
                    idle_timeout=route.timeouts.body_idle,
                    deadline=deadline,
                    stats=stats,
                )
            # Picked last: a pick may claim a half-open trial, which every path below settles.
            target = pool.pick()
            if target is None:
                raise _all_down(pool)
            if (
                body is not None
                and request.version == HttpVersion11
                and request.headers.get(hdrs.EXPECT, "").lower() == "100-continue"
            ):
                # Only now, with the key accepted and a target found, may the client send.
                try:
                    await request.writer.write(_CONTINUE)
                except BaseException:
                    pool.released(target)
                    raise
                request.writer.output_size = 0
            target.in_flight += 1
            exchange.target = target
            exchange.attempts = 1
            exchange.attempt_start = perf_counter()
            try:
                upstream = await self._attempt(
                    request, pool, target, headers, lines, body, exchange, streaming
                )
            except BaseException as exc:
                target.in_flight -= 1
                upstream, target = await self._retry(
                    request, pool, target, headers, lines, body, deadline, exc, exchange, streaming
                )
            exchange.upstream_s = perf_counter() - exchange.attempt_start
            if exchange.span is not None:
                request.app[OBSERVER_KEY].attempt_done(exchange, upstream.status, None)
            try:
                if upstream.status >= 500 and pool.health.fail_on_5xx:
                    pool.failed(target)
                else:
                    pool.succeeded(target)
                return await self._relay(
                    request, upstream, pool, target, deadline, exchange, fields, streaming
                )
            finally:
                target.in_flight -= 1
                upstream.release()
        except ProblemError as exc:
            # A 413, 502, 503 or 504 after the request was counted tells the count too.
            if fields is not None:
                exc.headers[RATELIMIT_POLICY_HEADER] = fields[0]
                exc.headers[RATELIMIT_HEADER] = fields[1]
            raise

    def _attempt(
        self,
        request: web.Request,
        pool: UpstreamPool,
        target: Target,
        headers: CIMultiDict[str],
        lines: str,
        body: RequestBody | None,
        exchange: Exchange,
        streaming: bool,
    ) -> Awaitable[aiohttp.ClientResponse]:
        if exchange.span is not None:
            # Exporting spans: this attempt has its own, and the backend's parent is it.
            lines = with_traceparent(
                lines,
                request.app[OBSERVER_KEY].attempt_started(
                    exchange, request.method, target, request.raw_path
                ),
            )
        # front_middleware (the request gate) lets only FORWARDED_METHODS through.
        call = self.call
        assert call is not None, "session_ctx sets the call before any request"
        return call(
            request.method,
            target.base,
            request.raw_path,
            headers,
            lines,
            body,
            pool.stream_timeout if streaming else pool.timeout,
        )

    async def _retry(
        self,
        request: web.Request,
        pool: UpstreamPool,
        target: Target,
        headers: CIMultiDict[str],
        lines: str,
        body: RequestBody | None,
        deadline: float | None,
        exc: BaseException,
        exchange: Exchange,
        streaming: bool,
    ) -> tuple[aiohttp.ClientResponse, Target]:
        """After a failed attempt: send again elsewhere when retries.py allows it, else raise
        what the client gets. Off the hot path: only failures come here."""
        tried: list[Target] = []
        stats = pool.stats
        while True:
            if exchange.span is not None:
                request.app[OBSERVER_KEY].attempt_done(exchange, None, exc)
            # A body stopped by its own limits surfaces as a connection error: say why.
            if body is not None and body.error is not None:
                pool.released(target)
                raise body.error from None
            if not isinstance(exc, (aiohttp.ClientError, OSError)):
                pool.released(target)
                raise exc
            pool.failed(target)
            kind = error_kind(exc)
            stats.errors[kind] = stats.errors.get(kind, 0) + 1
            tried.append(target)
            retry = None
            if may_retry(pool.route, len(tried), exc, request.method, body) and (
                deadline is None or monotonic() < deadline
            ):
                retry = pool.pick_retry(tried)
            if retry is None:
                raise _upstream_error(exc, kind, target.base, exchange.request_id) from None
            log.warning(
                "upstream %s failed for request %s: %s; retrying on %s",
                target.base,
                exchange.request_id,
                type(exc).__name__,
                retry.base,
            )
            stats.retries += 1
            target = exchange.target = retry
            target.in_flight += 1
            exchange.attempts += 1
            exchange.attempt_start = perf_counter()
            try:
                upstream = await self._attempt(
                    request, pool, target, headers, lines, body, exchange, streaming
                )
                return upstream, target
            except BaseException as again:
                target.in_flight -= 1
                exc = again

    async def _relay(
        self,
        request: web.Request,
        upstream: aiohttp.ClientResponse,
        pool: UpstreamPool,
        target: Target,
        deadline: float | None,
        exchange: Exchange,
        fields: tuple[str, str] | None,
        streaming: bool,
    ) -> web.StreamResponse:
        if upstream.status == 101:
            raise ProblemError(
                502, "The upstream tried to switch protocols.", reason="upstream_protocol"
            )
        request_id = exchange.request_id
        stats = pool.stats
        exchange.upstream_status = upstream.status
        headers = downstream_response_headers(upstream.headers, request_id, self.state.server)
        if streaming or _is_stream_type(upstream.headers.get(hdrs.CONTENT_TYPE), pool):
            _add_fields(headers, fields)
            response = web.StreamResponse(
                status=upstream.status, reason=upstream.reason, headers=headers
            )
            registry = request.app[LONG_LIVED_KEY]
            return await relay_stream(request, upstream, response, pool, target, registry)
        content = upstream.content
        try:
            # What of the body has arrived with the head: for a small answer, all of it.
            chunk = content.read_nowait()
        except (aiohttp.ClientError, TimeoutError, OSError):
            chunk = b""  # the read below raises it again, once the answer has started
        if content.at_eof() and (deadline is None or monotonic() <= deadline):
            # The whole body is here: status line, headers and body leave in one write
            # (apigw/answer.py), where a streamed answer takes one for the head and one per
            # chunk.
            size = len(chunk)
            stats.bytes_out += size
            exchange.bytes_out += size
            whole = WholeAnswer(upstream.status, upstream.reason, headers, chunk, fields)
            if self.draining:
                whole.force_close()
            # Sent now rather than by aiohttp once the handler and the middleware are done:
            # the client has its answer while the connection goes back to the pool and the
            # metrics and the access log line are written.
            await whole.prepare(request)
            return whole
        _add_fields(headers, fields)
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=headers
        )
        if self.draining:
            response.force_close()  # sends Connection: close; see front_middleware
        try:
            await response.prepare(request)
            read = content.readany
            while True:
                if not chunk:
                    try:
                        chunk = await read()
                    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                        pool.failed(target)
                        kind = error_kind(exc)
                        stats.errors[kind] = stats.errors.get(kind, 0) + 1
                        exchange.reason = f"upstream_{kind}"
                        log.warning(
                            "upstream %s failed mid-response for request %s: %s; "
                            "aborting the client",
                            target.base,
                            request_id,
                            type(exc).__name__,
                        )
                        abort_connection(request)
                        return response
                    if not chunk:
                        break
                    if len(chunk) >= _LARGE_CHUNK:
                        # One turn of the loop before a large chunk is written: the upstream
                        # socket is read meanwhile, so the upstream keeps sending while the
                        # client is written to. Writing at once, a 1 GiB download ran at about
                        # 450 MB/s instead of 1,000 (docs/notes/issue-12-performance.md).
                        await sleep(0)
                if deadline is not None and monotonic() > deadline:
                    log.warning(
                        "request %s took longer than its total timeout; aborting the client",
                        request_id,
                    )
                    exchange.reason = "total_timeout"
                    abort_connection(request)
                    return response
                # Counted as it flows: a long download shows in the metrics while it runs.
                size = len(chunk)
                stats.bytes_out += size
                exchange.bytes_out += size
                await response.write(chunk)
                chunk = b""
            await response.write_eof()
        except ConnectionError:
            # The client went away (reset, or lost while we waited to write); release()
            # then closes the upstream connection, whose response was not read to the end.
            exchange.reason = "client_abort"
            abort_connection(request)
        return response


def _is_stream_type(content_type: str | None, pool: UpstreamPool) -> bool:
    # Every response asks: a prefix test first (C speed, and false for nearly all of them),
    # the exact media type only then. ClientResponse.content_type would parse every parameter.
    return (
        content_type is not None
        and content_type.lower().startswith(pool.stream_prefixes)
        and content_type.partition(";")[0].strip().lower() in pool.stream_types
    )


def _add_fields(headers: CIMultiDict[str], fields: tuple[str, str] | None) -> None:
    """The gateway's RateLimit fields, beside the upstream's own, never over them: an
    intermediary must not make a policy look more permissive (the draft, 7.2). A whole
    answer writes them itself (WholeAnswer)."""
    if fields is not None:
        headers.add(RATELIMIT_POLICY_HEADER, fields[0])
        headers.add(RATELIMIT_HEADER, fields[1])


def _all_down(pool: UpstreamPool) -> ProblemError:
    return ProblemError(
        503,
        "No upstream of this route is healthy; retry later.",
        headers={hdrs.RETRY_AFTER: str(pool.retry_after())},
        reason="no_healthy_upstream",
    )


def error_kind(exc: BaseException) -> str:
    """What went wrong with an upstream attempt, as the metrics and the access log name it."""
    if isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
        return "connect"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, OSError)):
        return "reset"
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
        return "protocol"
    return "other"


def _upstream_error(exc: Exception, kind: str, base: str, request_id: str) -> ProblemError:
    if isinstance(exc, TimeoutError):
        log.warning("upstream %s timed out for request %s", base, request_id)
        return ProblemError(504, "The upstream did not answer in time.", reason=f"upstream_{kind}")
    log.warning("upstream %s unreachable for request %s: %s", base, request_id, type(exc).__name__)
    return ProblemError(502, "The upstream could not be reached.", reason=f"upstream_{kind}")


def setup_proxy(app: web.Application, limiter: RateLimiter) -> Proxy:
    proxy = Proxy(app[SETTINGS_KEY], app[OBSERVER_KEY].metrics, limiter)
    app[OBSERVER_KEY].route_of = proxy.route_stats
    app[OBSERVER_KEY].metrics.pools = lambda: proxy.state.pools
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
