"""OpenTelemetry export of the gateway's spans over OTLP/HTTP, when `tracing.otlp_endpoint` is set.

Imported only then (apigw/exchange.py): a gateway without an endpoint never loads the SDK. A
SERVER span covers each request, named `{method} {route}`, and a CLIENT span each upstream
attempt; the backend's parent is the attempt's span. The SDK chooses the ids (so the sampler
sees them); the request's trace context takes them over, so the access log and error bodies
carry the exported trace id. Spans leave in batches from the SDK's own thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.span import TraceFlags, TraceState
from yarl import URL

from apigw import __version__
from apigw.config.observability import TracingSettings

if TYPE_CHECKING:
    from apigw.observability.exchange import Exchange
    from apigw.upstreams import Target


class OtelExport:
    """A tracer provider of its own (the global one is left alone) with a batching exporter."""

    def __init__(self, settings: TracingSettings) -> None:
        assert settings.otlp_endpoint is not None
        resource = Resource.create(
            {"service.name": settings.service_name, "service.version": __version__}
        )
        self.provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=5),
                schedule_delay_millis=settings.export_interval * 1000,
            )
        )
        self.tracer = self.provider.get_tracer("apigw", __version__)

    def start_server(self, exchange: Exchange, request: web.Request) -> None:
        parent = None
        if exchange.parent_id is not None:
            remote = SpanContext(
                trace_id=int(exchange.trace_id, 16),
                span_id=int(exchange.parent_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(int(exchange.flags, 16)),
                trace_state=TraceState.from_header([exchange.tracestate])
                if exchange.tracestate
                else None,
            )
            parent = trace.set_span_in_context(NonRecordingSpan(remote))
        span = self.tracer.start_span(
            request.method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                # Bytes that are not UTF-8 (pure-Python parser) would stop the batch's encoding.
                "url.path": request.raw_path.partition("?")[0]
                .encode("utf-8", "backslashreplace")
                .decode(),
                "url.scheme": request.scheme,
                "client.address": request.remote or "",
                "user_agent.original": request.headers.get(hdrs.USER_AGENT, "")[:256],
            },
        )
        context = span.get_span_context()
        exchange.span = span
        exchange.trace_id = f"{context.trace_id:032x}"
        exchange.span_id = f"{context.span_id:016x}"
        exchange.flags = f"{int(context.trace_flags) & 0x03:02x}"

    def start_attempt(self, exchange: Exchange, method: str, target: Target, path: str) -> Any:
        """A CLIENT span for one upstream attempt; returns it, and the traceparent to send."""
        url = URL(target.base)
        span = self.tracer.start_span(
            method,
            context=trace.set_span_in_context(exchange.span),
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": url.host or "",
                "server.port": url.port or 0,
                "url.full": target.base + path.partition("?")[0],
            },
        )
        if exchange.attempts > 1:
            span.set_attribute("http.request.resend_count", exchange.attempts - 1)
        return span

    @staticmethod
    def traceparent(exchange: Exchange, span: Any) -> str:
        context = span.get_span_context()
        return f"00-{exchange.trace_id}-{context.span_id:016x}-{exchange.flags}"

    @staticmethod
    def end_attempt(span: Any, status: int | None, error: BaseException | None = None) -> None:
        if status is not None:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    @staticmethod
    def end_server(
        exchange: Exchange, request: web.Request, status: int, route: str, reason: str | None
    ) -> None:
        span = exchange.span
        span.update_name(f"{request.method} {route}")
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if reason is not None:
            span.set_attribute("apigw.reason", reason)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def shutdown(self) -> None:
        """Flush what is left (blocking: called in a thread at worker exit)."""
        self.provider.shutdown()
