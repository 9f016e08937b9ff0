"""Process-wide resource settings: client request limits, the upstream pool, shutdown timing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apigw.config.fields import ConfigError, integer, mapping, number


@dataclass(frozen=True, slots=True)
class Shutdown:
    """What SIGTERM does: readiness fails at once, the listener closes after `drain_delay`,
    and in-flight requests get `grace` seconds to finish."""

    drain_delay: float = 1.0
    grace: float = 30.0


@dataclass(frozen=True, slots=True)
class PoolSettings:
    max_connections: int = 1024
    # Shorter than a typical backend keep-alive (gunicorn: 2 s), so the gateway closes an
    # idle pooled connection before the backend does.
    idle_timeout: float = 1.5


_DEFAULT_POOL = PoolSettings()


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one client request may cost the gateway before a backend is involved.

    The sizes default to aiohttp's own parser limits, so a request the gateway accepts is one
    an aiohttp backend accepts too.
    """

    max_request_line: int = 8190  # bytes of "METHOD target HTTP/1.1"; over: 414
    max_header_field: int = 8190  # bytes of one header's name and value; over: 431
    max_header_bytes: int = 32768  # the whole header section, 4 bytes per field for ": " CRLF
    max_headers: int = 100  # header fields; over: 431
    max_in_flight: int = 1024  # requests in progress per worker; over: 503
    # Streams and WebSocket tunnels open per worker, counted apart from max_in_flight so
    # long-lived exchanges cannot starve ordinary requests; over: 503.
    max_streams: int = 4096
    # An idle keep-alive connection, or one whose request head is still arriving, is closed
    # after this long: it is also the deadline for a slowly sent (slowloris) request head.
    idle_timeout: float = 15.0
    # After refusing a request whose body is still arriving, the rest is read and dropped for
    # at most this long before closing, so the client sees the answer rather than a reset.
    lingering_time: float = 2.0


_LIMIT_FIELDS = ("max_request_line", "max_header_field", "max_header_bytes", "max_headers")


def parse_shutdown(node: Any) -> Shutdown:
    node = mapping(node or {}, "shutdown", {"drain_delay", "grace"})
    defaults = Shutdown()
    return Shutdown(
        drain_delay=number(
            node.get("drain_delay"), "shutdown.drain_delay", defaults.drain_delay, minimum=0
        ),
        grace=number(node.get("grace"), "shutdown.grace", defaults.grace),
    )


def parse_pool(node: Any) -> PoolSettings:
    pnode = mapping(node or {}, "pool", {"max_connections", "idle_timeout"})
    return PoolSettings(
        max_connections=integer(
            pnode.get("max_connections"), "pool.max_connections", _DEFAULT_POOL.max_connections
        ),
        idle_timeout=number(
            pnode.get("idle_timeout"), "pool.idle_timeout", _DEFAULT_POOL.idle_timeout
        ),
    )


def parse_limits(node: Any) -> ServerLimits:
    node = mapping(
        node or {},
        "limits",
        {*_LIMIT_FIELDS, "max_in_flight", "max_streams", "idle_timeout", "lingering_time"},
    )
    defaults = ServerLimits()
    counts: dict[str, int] = {}
    for key in (*_LIMIT_FIELDS, "max_in_flight", "max_streams"):
        counts[key] = integer(node.get(key), f"limits.{key}", getattr(defaults, key))
    if counts["max_request_line"] < 64 or counts["max_header_field"] < 64:
        raise ConfigError("limits: max_request_line and max_header_field must be at least 64")
    return ServerLimits(
        **counts,
        idle_timeout=number(node.get("idle_timeout"), "limits.idle_timeout", defaults.idle_timeout),
        lingering_time=number(
            node.get("lingering_time"), "limits.lingering_time", defaults.lingering_time, minimum=0
        ),
    )
