"""What the gateway records of each request: trace context, metrics, the access log line, spans.

`front_middleware` (middleware.py) calls `Observer.begin` when a request comes in and
`Observer.finish` when its answer is done; the proxy fills in the `Exchange` between (route,
target, attempts, upstream status and timing, bytes). Everything a request costs here is
prepared at start-up: per-route stats objects, the bucket bounds, the label strings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable
from math import trunc
from os import urandom
from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web

from apigw.config import GatewaySettings
from apigw.observability.access_log import MAX_PATH, MAX_USER_AGENT, AccessLog
from apigw.observability.metrics import (
    ANONYMOUS,
    BUCKETS,
    METHOD_INDEX,
    OTHER_METHOD,
    Metrics,
    RouteStats,
)
from apigw.observability.metrics_share import SharedMetrics, merge
from apigw.observability.tracecontext import TraceContext, start_trace
from apigw.shared.appkeys import OBSERVER_KEY
from apigw.shared.headers import REQUEST_ID_HEADER, request_id_from
from apigw.shared.reserved import DOCS_PATH, HEALTHZ_PATH, READYZ_PATH

if TYPE_CHECKING:
    from apigw.bodies import RequestBody
    from apigw.config.consumers import Consumer
    from apigw.observability.otel import OtelExport
    from apigw.upstreams import Target

log = logging.getLogger("apigw.exchange")

# Why the gateway answered itself, when the error did not say (ProblemError.reason).
REASON_BY_STATUS = {
    400: "bad_request",
    401: "auth",
    403: "forbidden",
    404: "no_route",
    405: "method_not_allowed",
    408: "body_timeout",
    411: "bad_request",
    413: "too_large",
    414: "too_large",
    417: "expectation_failed",
    429: "rate_limited",
    431: "too_large",
    499: "client_abort",
    500: "internal",
    502: "upstream_error",
    503: "unavailable",
    504: "upstream_timeout",
    505: "bad_request",
}
# The reasons counted as rejections (the gateway refused the request itself); the others are
# failures (upstream errors, internal errors, clients going away).
REJECTIONS = frozenset(
    {
        "auth",
        "bad_request",
        "body_timeout",
        "expectation_failed",
        "forbidden",
        "method_not_allowed",
        "no_healthy_upstream",
        "no_route",
        "overloaded",
        "rate_limited",
        # on_store_error: deny, while the rate-limit store cannot be reached (503).
        "rate_limit_store",
        "too_large",
    }
)
# The gateway's own endpoints: neither counted nor logged (probes and scrapes would drown the
# traffic). The admin paths are skipped only when they are answered as such.
_UNRECORDED = frozenset({HEALTHZ_PATH, READYZ_PATH, DOCS_PATH})
_UNRECORDED_PREFIX = DOCS_PATH + "/"
_SNAPSHOT_INTERVAL = 1.0


class Exchange(TraceContext):
    """One request as the gateway saw it; the proxy fills in the upstream side."""

    __slots__ = (
        "attempt_span",
        "attempt_start",
        "attempts",
        "body",
        "bytes_out",
        "consumer",
        "internal",
        "reason",
        "request_id",
        "span",
        "start",
        "stats",
        "target",
        "upstream_s",
        "upstream_status",
    )

    def __init__(self, request_id: str, start: float) -> None:
        # Every field set here, even to None: a slot store costs less than reading a class
        # default back through the instance (measured under callgrind).
        self.request_id = request_id
        self.start = start
        self.consumer: Consumer | None = None  # set by front_middleware's key check
        self.stats: RouteStats | None = None  # set by the proxy once the route is known
        self.target: Target | None = None  # the last target tried
        self.attempts = 0
        self.attempt_start = 0.0
        self.upstream_s: float | None = None  # to the upstream's response head
        self.upstream_status: int | None = None  # set when the upstream's answer is relayed
        self.body: RequestBody | None = None  # the request body streamed upstream
        self.bytes_out = 0  # response body bytes relayed
        self.reason: str | None = None
        self.internal = False  # an admin answer: not counted, not logged
        self.span: Any = None  # the OpenTelemetry server span, when exporting
        self.attempt_span: Any = None  # ... and the span of the upstream attempt under way


class Observer:
    """The worker's metrics, access log and (optional) span export."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.metrics = Metrics(enabled=settings.metrics.enabled)
        # The routes that counted a request since the last history tick (Metrics.tick).
        self.touched = self.metrics.touched
        self.metrics_enabled = settings.metrics.enabled
        self.access_log = AccessLog(settings.access_log) if settings.access_log.enabled else None
        self.tracing = settings.tracing
        self.otel: OtelExport | None = None
        self.shared: SharedMetrics | None = None
        self.route_of: Callable[[str], RouteStats | None] = lambda path: None
        self.started = time.time()
        self.loaded_at = self.started
        self.generation = 1
        self.last_reload: dict[str, Any] | None = None
        if self.access_log is not None:
            access_log = self.access_log
            self.metrics.access_log_dropped = lambda: access_log.dropped

    def begin(self, request: web.Request) -> Exchange:
        headers = request.headers
        # The trace id, the span id and the request id from one draw: 32, 16 and 32 hex digits.
        ids = urandom(40).hex()
        exchange = Exchange(
            request_id_from(headers.get(REQUEST_ID_HEADER), ids[48:]), perf_counter()
        )
        start_trace(exchange, headers, ids)
        if self.otel is not None:
            self.otel.start_server(exchange, request)
        return exchange

    def finish(
        self,
        request: web.Request,
        exchange: Exchange,
        status: int,
        response: web.StreamResponse | None,
    ) -> None:
        duration = perf_counter() - exchange.start
        stats = exchange.stats
        if stats is not None:
            stats.in_flight -= 1
            bytes_out = exchange.bytes_out
        else:
            if exchange.internal:
                return
            path = request.raw_path.partition("?")[0]
            if path in _UNRECORDED or path.startswith(_UNRECORDED_PREFIX):
                return
            stats = self.route_of(path) or self.metrics.unmatched
            body = getattr(response, "body", None)
            bytes_out = len(body) if isinstance(body, bytes) else 0
            stats.bytes_out += bytes_out
        upstream_status = exchange.upstream_status
        upstream_s = exchange.upstream_s
        reason = exchange.reason
        if reason is None and upstream_status is None:
            reason = REASON_BY_STATUS.get(status)
        found = exchange.consumer
        consumer = None if found is None else found.name
        if self.metrics_enabled:
            method = METHOD_INDEX.get(request.method, OTHER_METHOD)
            stats.requests[status << 4 | method << 1 | (upstream_status is not None)] += 1
            self.touched.add(stats)
            stats.duration[bisect_left(BUCKETS, duration)] += 1
            stats.duration_sum += duration
            if upstream_s is not None:
                stats.upstream[bisect_left(BUCKETS, upstream_s)] += 1
                stats.upstream_sum += upstream_s
            stats.consumers[consumer or ANONYMOUS][status // 100] += 1
            if reason in REJECTIONS:
                stats.rejections[reason] += 1
        access_log = self.access_log
        if access_log is not None:
            # The worker's one record, refilled in place (20 stores cost less than building a
            # dict): write() has serialised it before the next request fills it again.
            record = access_log.record
            record["time"] = access_log.clock.now()
            record["request_id"] = exchange.request_id
            record["trace_id"] = exchange.trace_id
            record["span_id"] = exchange.span_id
            record["consumer"] = consumer
            record["route"] = stats.route
            record["method"] = request.method
            record["path"] = request.raw_path.partition("?")[0][:MAX_PATH]
            record["status"] = status
            record["source"] = "gateway" if upstream_status is None else "upstream"
            record["reason"] = reason
            body = exchange.body
            record["bytes_in"] = 0 if body is None else body.sent
            record["bytes_out"] = bytes_out
            target = exchange.target
            record["upstream"] = None if target is None else target.base
            record["upstream_status"] = upstream_status
            record["attempts"] = exchange.attempts
            # Microsecond precision, as a number of milliseconds: trunc() is int() of a float
            # without the call of a type, and both cost less than round().
            record["duration_ms"] = trunc(duration * 1_000_000) / 1000
            record["upstream_ms"] = (
                None if upstream_s is None else trunc(upstream_s * 1_000_000) / 1000
            )
            record["client_ip"] = request.remote
            user_agent = request.headers.get(hdrs.USER_AGENT, "")[:MAX_USER_AGENT]
            record["user_agent"] = user_agent or None
            access_log.write(record)
        if exchange.span is not None and self.otel is not None:
            self.otel.end_server(exchange, request, status, stats.route, reason)

    def parser_answered(self, status: int) -> None:
        """aiohttp's parser refused a request (apigw/server.py answered it): no route, no
        method, no path can be trusted, so it counts under `unmatched` and `OTHER`."""
        if not self.metrics_enabled:
            return
        stats = self.metrics.unmatched
        stats.requests[status << 4 | OTHER_METHOD << 1] += 1
        self.touched.add(stats)
        reason = REASON_BY_STATUS.get(status)
        if reason in REJECTIONS:
            stats.rejections[reason] += 1

    def attempt_started(self, exchange: Exchange, method: str, target: Target, path: str) -> str:
        """Exporting spans: open the attempt's span; the traceparent the backend gets."""
        assert self.otel is not None
        span = exchange.attempt_span = self.otel.start_attempt(exchange, method, target, path)
        return self.otel.traceparent(exchange, span)

    def attempt_done(
        self, exchange: Exchange, status: int | None, error: BaseException | None
    ) -> None:
        span = exchange.attempt_span
        if span is not None and self.otel is not None:
            exchange.attempt_span = None
            self.otel.end_attempt(span, status, error)

    def reloaded(self, ok: bool) -> None:
        """A config reload in this process (python gateway.py; gunicorn's master counts its own)."""
        self.metrics.reloads["success" if ok else "failure"] += 1
        self.last_reload = {"time": time.time(), "result": "success" if ok else "failure"}
        if ok:
            self.generation += 1
            self.loaded_at = time.time()

    async def collect(self) -> dict[str, Any]:
        """Every worker's metrics summed, as of now."""
        snapshot = self.metrics.snapshot()
        if self.shared is None:
            merged = merge([snapshot], [])
            merged["generation"] = self.generation
            merged["last_reload"] = self.last_reload
            return merged
        shared = self.shared
        shared.write(snapshot)
        # Reading and summing the other workers' files is file I/O: off the loop.
        return await asyncio.to_thread(shared.collect)

    def share(self, directory: Path) -> None:
        """Under gunicorn: the directory where every worker of this master leaves its snapshot."""
        self.shared = SharedMetrics(directory)


async def _snapshot_loop(observer: Observer) -> None:
    metrics = observer.metrics
    while True:
        await asyncio.sleep(_SNAPSHOT_INTERVAL)
        metrics.tick(time.time())
        if observer.shared is not None:
            try:
                observer.shared.write(metrics.snapshot())
            except OSError as exc:
                log.warning("metrics snapshot not written: %s", exc)


async def observer_ctx(app: web.Application) -> AsyncIterator[None]:
    observer = app[OBSERVER_KEY]
    if observer.access_log is not None:
        observer.access_log.start()
    if observer.tracing.otlp_endpoint is not None:
        # Imported only here: without an endpoint the SDK is never loaded.
        from apigw.observability.otel import OtelExport

        observer.otel = OtelExport(observer.tracing)
    observer.metrics.tick(time.time())
    task = asyncio.create_task(_snapshot_loop(observer))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if observer.shared is not None:
        # The last requests' counts, before the master retires this worker's file.
        with contextlib.suppress(OSError):
            observer.shared.write(observer.metrics.snapshot())
    if observer.access_log is not None:
        await asyncio.to_thread(observer.access_log.stop)
    if observer.otel is not None:
        await asyncio.to_thread(observer.otel.shutdown)


def setup_observability(app: web.Application, settings: GatewaySettings) -> Observer:
    observer = Observer(settings)
    app[OBSERVER_KEY] = observer
    app.cleanup_ctx.append(observer_ctx)
    return observer
