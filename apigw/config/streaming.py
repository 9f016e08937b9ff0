"""Per-route settings for long-lived exchanges: WebSocket tunnels and streamed responses.

Both may be set at the top level (the default of every route) and per route, like `timeouts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apigw.config.fields import ConfigError, boolean, integer, mapping, number, optional_number


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """How WebSocket handshakes on a route are tunnelled to its upstreams."""

    enabled: bool = True  # false: `Upgrade` is stripped and the GET forwarded as a plain one
    idle_timeout: float = 300.0  # no byte in either direction this long: close 1001
    max_lifetime: float | None = 86400.0  # a tunnel older than this is closed 1001; None: none
    max_connections: int = 1024  # open tunnels per worker on this route; over: 503
    # Browsers cannot set x-api-key on a WebSocket: accept the key as the subprotocol
    # `x-api-key.<key>` instead (never forwarded, never echoed, never logged).
    key_protocol: bool = False


@dataclass(frozen=True, slots=True)
class Streaming:
    """Which responses are streams: they get `idle_timeout` instead of `read` and `total`."""

    # Media types (no parameters, lower case) whose responses are streams.
    content_types: frozenset[str] = frozenset({"text/event-stream"})
    # Path prefixes (segment-bounded, like route prefixes) whose responses are streams,
    # known before the upstream answers: long polls that are silent until they answer.
    paths: tuple[str, ...] = ()
    idle_timeout: float = 300.0  # the longest gap between two chunks of a stream


_WEBSOCKET_FIELDS = {"enabled", "idle_timeout", "max_lifetime", "max_connections", "key_protocol"}


def parse_websocket(node: Any, where: str, defaults: WebSocketSettings) -> WebSocketSettings:
    node = mapping(node or {}, where, _WEBSOCKET_FIELDS)
    return WebSocketSettings(
        enabled=boolean(node.get("enabled"), f"{where}.enabled", defaults.enabled),
        idle_timeout=number(
            node.get("idle_timeout"), f"{where}.idle_timeout", defaults.idle_timeout
        ),
        max_lifetime=optional_number(node, "max_lifetime", where, defaults.max_lifetime),
        max_connections=integer(
            node.get("max_connections"), f"{where}.max_connections", defaults.max_connections
        ),
        key_protocol=boolean(
            node.get("key_protocol"), f"{where}.key_protocol", defaults.key_protocol
        ),
    )


def parse_streaming(node: Any, where: str, defaults: Streaming) -> Streaming:
    node = mapping(node or {}, where, {"content_types", "paths", "idle_timeout"})
    content_types = defaults.content_types
    if "content_types" in node:
        raw = node["content_types"]
        if not isinstance(raw, list) or not all(_is_media_type(t) for t in raw):
            raise ConfigError(
                f"{where}.content_types: expected a list of media types such as text/event-stream"
            )
        content_types = frozenset(t.strip().lower() for t in raw)
    paths = defaults.paths
    if "paths" in node:
        raw = node["paths"]
        if not isinstance(raw, list):
            raise ConfigError(f"{where}.paths: expected a list of path prefixes")
        paths = tuple(_check_path(p, f"{where}.paths[{i}]") for i, p in enumerate(raw))
    return Streaming(
        content_types=content_types,
        paths=paths,
        idle_timeout=number(
            node.get("idle_timeout"), f"{where}.idle_timeout", defaults.idle_timeout
        ),
    )


def _is_media_type(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    kind, slash, sub = value.strip().partition("/")
    return bool(slash and kind and sub) and value.isascii() and ";" not in value and " " not in sub


def _check_path(value: Any, where: str) -> str:
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or (value != "/" and value.endswith("/"))
        or not value.isascii()
        or not value.isprintable()
        or any(c in value for c in " %?#\\")
        or "//" in value
    ):
        raise ConfigError(f"{where}: expected a plain path prefix such as /orders/events")
    return value
