"""Every `@web.middleware` of the gateway and the services, and the order they run in.

None of them reads a body. The gateway has one, made by `gateway_middleware(app)`;
`SERVICE_MIDDLEWARES` lists the services' outermost first, as `web.Application(middlewares=...)`
expects.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from apigw.config.consumers import Consumer
from apigw.observability.admin import admin_allowed
from apigw.observability.exchange import Exchange
from apigw.shared.appkeys import (
    ACCEPTED_SECRETS_KEY,
    EXCHANGE_KEY,
    KEY_IN_PROTOCOL_KEY,
    KEYRING_KEY,
    OBSERVER_KEY,
    OPEN_PATHS_KEY,
    OPEN_PREFIXES_KEY,
    REQUEST_GATE_KEY,
    REQUEST_ID_KEY,
    SERVER_HEADER_KEY,
)
from apigw.shared.errors import ProblemError, abort_connection, problem_response, render_error
from apigw.shared.headers import (
    API_KEY_HEADER,
    GATEWAY_SECRET_HEADER,
    REQUEST_ID_HEADER,
    request_id_from,
)
from apigw.shared.logs import describe_exception
from apigw.shared.reserved import ADMIN_PATHS
from apigw.streaming.websocket import is_websocket_upgrade, key_from_protocols

log = logging.getLogger("apigw.errors")
# nginx's convention for the access log: the client closed the connection first.
CLIENT_CLOSED_REQUEST = 499


def _is_open(request: web.Request, app: web.Application) -> bool:
    # The raw path, not request.path: yarl resolves dot-segments in the decoded one.
    path = request.raw_path.partition("?")[0]
    return path in app[OPEN_PATHS_KEY] or path.startswith(app[OPEN_PREFIXES_KEY])


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Keeps a sane client X-Request-ID, else makes one; every response carries it, and the
    configured Server header."""
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = request_id
    response = await handler(request)
    if not response.prepared:
        headers = response.headers
        headers[REQUEST_ID_HEADER] = request_id
        # aiohttp's default names Python's version and its own; ours names none.
        headers[hdrs.SERVER] = request.app[SERVER_HEADER_KEY]
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost error layer: every error leaves as problem+json with the request id.

    Once a response head has left, no second one may follow: the connection is cut instead,
    so the client sees a broken reply, never a wrong one.
    """
    try:
        return await handler(request)
    except Exception as exc:
        return _answer_error(request, exc, request[REQUEST_ID_KEY], None)


def _answer_error(
    request: web.Request, exc: Exception, request_id: str, exchange: Exchange | None
) -> web.StreamResponse:
    if request.writer.output_size > 0:
        return _abort_started(request, exc, request_id)
    return _error_response(request, exc, request_id, exchange)


def _abort_started(request: web.Request, exc: Exception, request_id: str) -> web.StreamResponse:
    if not isinstance(exc, ConnectionError):
        log.error(
            "error after the response started, request %s: %s; aborting the client",
            request_id,
            describe_exception(exc),
        )
    abort_connection(request)
    # Never written: aiohttp's finish_response meets the closed transport and stops.
    return web.Response(status=CLIENT_CLOSED_REQUEST)


def _error_response(
    request: web.Request, exc: Exception, request_id: str, exchange: Exchange | None
) -> web.StreamResponse:
    # The gateway's errors carry the trace id too (the services have no trace context).
    trace_id = None if exchange is None else exchange.trace_id
    if isinstance(exc, ProblemError):
        response = render_error(exc, request_id, trace_id)
        if exchange is not None:
            exchange.reason = exc.reason
    elif isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc  # a redirect raised by a handler is an answer, not an error
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        response = problem_response(
            exc.status, exc.reason, request_id, headers=headers, trace_id=trace_id
        )
    elif isinstance(exc, ConnectionError):
        # The client went away mid-reply: nothing can be sent, and it is not our fault.
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    else:
        # The exception's message may hold request headers (secrets included): log its type
        # and where it was raised, never its text.
        log.error("unhandled error in request %s: %s", request_id, describe_exception(exc))
        response = problem_response(500, "Internal error.", request_id, trace_id=trace_id)
    if request.body_exists and not request.content.at_eof():
        # A refused upload is not drained for long (aiohttp would read it for up to 10 s to
        # keep the connection): the connection closes after the short lingering time.
        response.force_close()
    return response


@web.middleware
async def gateway_secret_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A backend answers only the gateway: x-gateway-secret must match an accepted secret."""
    if _is_open(request, request.app):
        return await handler(request)
    presented = request.headers.getall(GATEWAY_SECRET_HEADER, ())
    ok = False
    if len(presented) == 1 and presented[0].isascii():
        candidate = presented[0].encode()
        # Every accepted secret is compared, so the timing tells nothing about which matched.
        for secret in request.app[ACCEPTED_SECRETS_KEY]:
            ok |= hmac.compare_digest(candidate, secret)
    if not ok:
        raise ProblemError(403, "This service only answers the gateway.")
    return await handler(request)


def gateway_middleware(app: web.Application) -> Middleware:
    """The gateway's one middleware, bound to this app's parts so that no request looks them
    up. One layer, not four: each layer costs every request a call and a coroutine."""
    observer = app[OBSERVER_KEY]
    gate = app[REQUEST_GATE_KEY]
    keyring = app[KEYRING_KEY]
    server_header = app[SERVER_HEADER_KEY]
    open_paths = app[OPEN_PATHS_KEY]
    open_prefixes = app[OPEN_PREFIXES_KEY]

    @web.middleware
    async def front_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        """In order: gives the request its id and trace context; refuses heads no backend
        should see and sheds load past the in-flight cap (apigw/request_gate.py); accepts the
        request only with one valid x-api-key (before routing could answer 404); answers
        every error as problem+json; records the answer (metrics, the access log line, the
        span).

        The gate runs before the key check: a malformed or oversized request costs no key
        lookup, and its answer (400/405/414/431/505, connection closed) tells nothing about
        keys or routes. Once a response head has left, no second one may follow: the
        connection is cut instead, so the client sees a broken reply, never a wrong one.
        """
        exchange = observer.begin(request)
        request[EXCHANGE_KEY] = exchange
        request_id = exchange.request_id
        try:
            gate.enter(request)
            try:
                if not is_open(request):
                    exchange.consumer = consumer_of(request)
                response = await handler(request)
            finally:
                gate.leave()
        except Exception as exc:
            try:
                response = _answer_error(request, exc, request_id, exchange)
            except web.HTTPException as redirect:
                # A redirect raised by a handler is an answer, not an error.
                observer.finish(request, exchange, redirect.status, None)
                raise
        except BaseException:
            # Cancelled: the client went away and aiohttp stopped the handler.
            observer.finish(request, exchange, CLIENT_CLOSED_REQUEST, None)
            raise
        if not response.prepared:
            headers = response.headers
            headers[REQUEST_ID_HEADER] = request_id
            # aiohttp's default names Python's version and its own; ours names none.
            headers[hdrs.SERVER] = server_header
            if gate.draining:
                # As Envoy drains: answers during the drain carry Connection: close, so
                # keep-alive clients reconnect (to a live process) instead of racing the
                # close of an idle connection when the listener goes. The proxy does the
                # same for what it streams.
                response.force_close()
        observer.finish(request, exchange, response.status, response)
        return response

    def is_open(request: web.Request) -> bool:
        # The raw path, not request.path: yarl resolves dot-segments in the decoded one.
        path = request.raw_path.partition("?")[0]
        if path in ADMIN_PATHS:
            # Open to the admin networks only; anyone else meets the key check like anywhere.
            return admin_allowed(request)
        return path in open_paths or path.startswith(open_prefixes)

    def consumer_of(request: web.Request) -> Consumer:
        """The consumer whose one valid x-api-key the request carries, else a 400 or 401."""
        headers = request.headers
        keys = headers.getall(API_KEY_HEADER, ())
        if len(keys) > 1:
            raise ProblemError(400, "Send exactly one x-api-key header.")
        key = keys[0] if keys else ""
        if not keys and hdrs.SEC_WEBSOCKET_PROTOCOL in headers:
            # A browser's WebSocket cannot send x-api-key; the proxy accepts this only on
            # routes with `websocket.key_protocol` (apigw/upgrade.py), and never forwards it.
            key = (is_websocket_upgrade(headers) and key_from_protocols(headers)) or ""
            request[KEY_IN_PROTOCOL_KEY] = bool(key)
        consumer = None
        if key and key.isascii():
            consumer = keyring.consumer_for(key.encode())
        if consumer is None:
            raise ProblemError(401, "A valid API key is required in the x-api-key header.")
        return consumer

    return front_middleware


SERVICE_MIDDLEWARES = (request_id_middleware, error_middleware, gateway_secret_middleware)
