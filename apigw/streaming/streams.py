"""Long-lived exchanges: streamed responses (SSE, long polls, slow downloads) and WebSocket tunnels.

They have their own cap (`limits.max_streams`), apart from the in-flight cap meant for ordinary
requests, and their own drain: when the listener closes, tunnels are closed with 1001 at once
(they never end by themselves), and streams get the grace period, then end cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import hdrs, web

from apigw.config import ServerLimits, Shutdown
from apigw.observability.metrics import labels
from apigw.shared.appkeys import (
    EXCHANGE_KEY,
    LIFECYCLE_KEY,
    LONG_LIVED_KEY,
    OBSERVER_KEY,
    REQUEST_GATE_KEY,
)
from apigw.shared.errors import ProblemError, abort_connection
from apigw.upstreams import Target, UpstreamPool

if TYPE_CHECKING:
    from apigw.request_gate import RequestGate
    from apigw.streaming.tunnel import Tunnel

log = logging.getLogger("apigw.streams")

# How often a quiet stream checks that its client is still there ("noticed within a second").
CLIENT_CHECK_INTERVAL = 0.5
# Streams end this long before the grace period does, so their terminator is sent in time.
_END_MARGIN = 0.5
_RETRY_AFTER: dict[str, str] = {hdrs.RETRY_AFTER: "1"}


class _Stopped(Exception):
    """Wakes a stream's read when the gateway ends it (drain, or its client went away)."""


class Stream:
    """One streamed response under way."""

    __slots__ = ("_check", "_request", "_upstream", "client_gone", "ending")

    def __init__(self, request: web.Request, upstream: aiohttp.ClientResponse) -> None:
        self._request = request
        self._upstream = upstream
        self.ending = False  # the gateway ends it: drain
        self.client_gone = False
        self._check = asyncio.get_running_loop().call_later(
            CLIENT_CHECK_INTERVAL, self._check_client
        )

    def _check_client(self) -> None:
        # A quiet stream would notice a gone client only at its next chunk; the upstream
        # connection is freed within a second instead.
        if self._request.transport is None or self._request.transport.is_closing():
            self.client_gone = True
            self._stop()
        else:
            self._check = asyncio.get_running_loop().call_later(
                CLIENT_CHECK_INTERVAL, self._check_client
            )

    def end(self) -> None:
        self.ending = True
        self._stop()

    def _stop(self) -> None:
        self._upstream.content.set_exception(_Stopped())

    def close(self) -> None:
        self._check.cancel()


class LongLived:
    """The streams and tunnels of this worker."""

    def __init__(self, limits: ServerLimits, gate: RequestGate) -> None:
        self.max_streams = limits.max_streams
        self._gate = gate
        self.streams: set[Stream] = set()
        self.tunnels: set[Tunnel] = set()
        self.per_route: dict[str, int] = {}  # open tunnels per route prefix
        self.draining = False

    @property
    def count(self) -> int:
        return len(self.streams) + len(self.tunnels)

    def admit(self, kind: str) -> None:
        """Count one more long-lived exchange instead of an ordinary request in flight."""
        if self.draining:
            raise ProblemError(503, "The gateway is shutting down.", headers=_RETRY_AFTER)
        if self.count >= self.max_streams:
            raise ProblemError(
                503,
                f"The gateway has too many open {kind}; retry shortly.",
                headers=_RETRY_AFTER,
                reason="overloaded",
            )
        # It leaves the in-flight count of ordinary requests (the gate takes it back at
        # the end, as front_middleware expects).
        self._gate.leave()

    def admit_tunnel(self, prefix: str, max_connections: int) -> None:
        if self.per_route.get(prefix, 0) >= max_connections:
            raise ProblemError(
                503,
                "This route has too many open WebSockets; retry shortly.",
                headers=_RETRY_AFTER,
                reason="overloaded",
            )
        self.admit("WebSockets")

    def add_tunnel(self, prefix: str, tunnel: Tunnel) -> None:
        self.tunnels.add(tunnel)
        self.per_route[prefix] = self.per_route.get(prefix, 0) + 1

    def remove_tunnel(self, prefix: str, tunnel: Tunnel) -> None:
        self.tunnels.discard(tunnel)
        self.per_route[prefix] -= 1

    def release(self) -> None:
        """The counterpart of `admit`, whether or not the exchange got going."""
        self._gate.in_flight += 1

    def listener_closing(self, shutdown: Shutdown) -> None:
        """The listener closes: tunnels go away now, streams when the grace period ends."""
        if self.draining:
            return
        self.draining = True
        for tunnel in list(self.tunnels):
            tunnel.go_away("shutdown")
        if self.streams:
            delay = max(shutdown.grace - _END_MARGIN, 0.0)
            log.info("%d streams get %gs before they are ended", len(self.streams), delay)
            asyncio.get_running_loop().call_later(delay, self._end_streams)

    def _end_streams(self) -> None:
        for stream in list(self.streams):
            stream.end()


async def relay_stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    pool: UpstreamPool,
    target: Target,
    registry: LongLived,
) -> web.StreamResponse:
    """Relay a stream: every chunk at once, no total limit, only the stream's idle timeout."""
    registry.admit("streams")
    try:
        # The pooled connection's read timer (`timeouts.read`) becomes the stream's idle
        # timeout; aiohttp's ResponseHandler restarts it at every chunk.
        protocol = upstream.connection.protocol if upstream.connection is not None else None
        if protocol is not None:
            protocol.read_timeout = pool.route.streaming.idle_timeout
            protocol.start_timeout()
        stream = Stream(request, upstream)
        registry.streams.add(stream)
        try:
            await _pump(request, upstream, response, pool, target, stream)
        finally:
            registry.streams.discard(stream)
            stream.close()
    finally:
        registry.release()
    return response


async def _pump(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    response: web.StreamResponse,
    pool: UpstreamPool,
    target: Target,
    stream: Stream,
) -> None:
    exchange = request[EXCHANGE_KEY]
    stats = pool.stats
    try:
        await response.prepare(request)
        read = upstream.content.readany
        while True:
            try:
                chunk = await read()
            except _Stopped:
                break
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if isinstance(exc, TimeoutError):
                    exchange.reason = "stream_idle_timeout"
                    log.info("stream %s idle too long; ending it", exchange.request_id)
                else:
                    pool.failed(target)
                    exchange.reason = "upstream_reset"
                    stats.errors["reset"] = stats.errors.get("reset", 0) + 1
                    log.warning(
                        "upstream %s failed mid-stream: %s", target.base, type(exc).__name__
                    )
                abort_connection(request)
                return
            if not chunk:
                await response.write_eof()
                return
            # Counted as it flows, like any response (apigw/proxy.py).
            size = len(chunk)
            stats.bytes_out += size
            exchange.bytes_out += size
            await response.write(chunk)
    except ConnectionError:
        exchange.reason = "client_abort"
        abort_connection(request)
        return
    if stream.client_gone:
        exchange.reason = "client_abort"
        abort_connection(request)
        return
    # Drain: a chunked stream gets its terminator, so the client sees a complete response
    # (an EventSource reconnects at once, elsewhere); a stream framed by length cannot end
    # early, and is closed.
    response.force_close()
    if hdrs.TRANSFER_ENCODING in response.headers:
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
    else:
        abort_connection(request)


def setup_long_lived(app: web.Application, shutdown: Shutdown, limits: ServerLimits) -> LongLived:
    registry = LongLived(limits, app[REQUEST_GATE_KEY])
    app[LONG_LIVED_KEY] = registry
    app[LIFECYCLE_KEY].listener_closing.append(lambda: registry.listener_closing(shutdown))
    metrics = app[OBSERVER_KEY].metrics
    metrics.add_gauge(
        "gateway_websockets_open",
        "WebSocket tunnels open, by route.",
        lambda: {labels(route=prefix): n for prefix, n in registry.per_route.items()},
    )
    metrics.add_gauge(
        "gateway_streams_open",
        "Streamed responses (SSE, long polls) under way.",
        lambda: {"": len(registry.streams)},
    )

    async def drain_long_lived(app: web.Application) -> None:
        # Without the gateway's signal handlers (an app run by a test harness): at cleanup.
        registry.listener_closing(shutdown)

    app.on_shutdown.append(drain_long_lived)
    return registry
