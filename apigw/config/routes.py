"""Per-route settings: prefix, upstream targets, timeouts, body limit, balancing, retries, health.

A route's own keys override the top-level defaults, which `parse_gateway_settings` builds as a
`Route` and passes to `parse_route`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yarl import URL

from apigw.config.fields import (
    ConfigError,
    boolean,
    byte_size,
    field_path,
    integer,
    mapping,
    number,
    optional_number,
)
from apigw.config.plans import Rate, parse_rate
from apigw.config.streaming import (
    Streaming,
    WebSocketSettings,
    parse_streaming,
    parse_websocket,
)
from apigw.shared.reserved import HEALTHZ_PATH, RESERVED_PATHS

# An API body larger than this is almost always a mistake; routes that take uploads raise it.
DEFAULT_MAX_BODY_BYTES = 10 << 20


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 5.0  # TCP connect, and the wait for a free pooled connection
    read: float = 60.0  # between two reads from the upstream
    # The whole exchange, retries and streamed bodies included; None: no limit.
    total: float | None = 300.0
    body_idle: float = 30.0  # between two chunks of a client's request body


@dataclass(frozen=True, slots=True)
class Health:
    """Passive ejection of failing targets, and optional active checks."""

    max_failures: int = 3  # consecutive failures that take a target out
    eject_seconds: float = 5.0  # out this long, then one trial request (half-open)
    fail_on_5xx: bool = False  # count a 5xx answer as a failure too
    check_interval: float | None = None  # seconds between active checks; None: off
    check_path: str = HEALTHZ_PATH
    check_timeout: float = 2.0


BALANCE_MODES = ("round_robin", "least_outstanding")


@dataclass(frozen=True, slots=True)
class Route:
    prefix: str
    upstreams: tuple[str, ...]
    timeouts: Timeouts = Timeouts()
    max_body_bytes: int | None = None  # None: no limit
    balance: str = "round_robin"  # one of BALANCE_MODES
    retries: int = 1  # further attempts, each on another target when there is one
    health: Health = Health()
    # Frozen dataclasses, so one shared default is safe; ruff cannot see that across modules.
    websocket: WebSocketSettings = WebSocketSettings()  # noqa: RUF009
    streaming: Streaming = Streaming()  # noqa: RUF009
    # One GCRA bucket that every consumer of the route shares; None: no route-wide limit.
    rate: Rate | None = None


def _check_prefix(prefix: Any, where: str) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        raise ConfigError(f"{where}: must be a path starting with '/', got {prefix!r}")
    if prefix != "/" and prefix.endswith("/"):
        raise ConfigError(f"{where}: must not end with '/', got {prefix!r}")
    segments = prefix.split("/")[1:]
    if prefix != "/" and any(s in ("", ".", "..") for s in segments):
        raise ConfigError(f"{where}: empty or dot segment in {prefix!r}")
    if any(c in prefix for c in "%?#\\") or not prefix.isprintable() or " " in prefix:
        raise ConfigError(f"{where}: only plain path characters are allowed, got {prefix!r}")
    for reserved in RESERVED_PATHS:
        if prefix == reserved or prefix.startswith(reserved + "/"):
            raise ConfigError(f"{where}: {prefix!r} is served by the gateway itself")
    return prefix


def _check_upstream(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{where}: expected a base URL such as http://127.0.0.1:8001")
    try:
        url = URL(raw)
    except ValueError:
        raise ConfigError(f"{where}: not a URL: {raw!r}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(f"{where}: expected an http:// or https:// URL with a host, got {raw!r}")
    if url.user or url.password or url.query_string or url.fragment:
        raise ConfigError(f"{where}: a base URL has no credentials, query or fragment")
    # Stored without a trailing slash: the client's raw path, which starts with '/', is appended.
    return str(url).rstrip("/")


_ROUTE_FIELDS = {
    "prefix",
    "upstreams",
    "timeouts",
    "max_body_bytes",
    "balance",
    "retries",
    "health",
    "websocket",
    "streaming",
    "rate",
}


def parse_route(node: Any, where: str, defaults: Route) -> Route:
    """One `routes:` entry; what it leaves out comes from the top-level defaults."""
    node = mapping(node, where, _ROUTE_FIELDS)
    prefix = _check_prefix(node.get("prefix"), f"{where}.prefix")
    ups = node.get("upstreams")
    if not isinstance(ups, list) or not ups:
        raise ConfigError(f"{where}.upstreams: expected a non-empty list of base URLs")
    upstreams = tuple(_check_upstream(u, f"{where}.upstreams[{i}]") for i, u in enumerate(ups))
    if len(set(upstreams)) != len(upstreams):
        raise ConfigError(f"{where}.upstreams: the same base URL is listed twice")
    streaming = parse_streaming(node.get("streaming"), f"{where}.streaming", defaults.streaming)
    for i, path in enumerate(streaming.paths if "streaming" in node else ()):
        if prefix != "/" and path != prefix and not path.startswith(prefix + "/"):
            raise ConfigError(f"{where}.streaming.paths[{i}]: {path!r} is not under {prefix!r}")
    return Route(
        prefix=prefix,
        upstreams=upstreams,
        timeouts=parse_timeouts(node.get("timeouts"), f"{where}.timeouts", defaults.timeouts),
        max_body_bytes=byte_size(node, "max_body_bytes", where, defaults.max_body_bytes),
        balance=parse_balance(node, where, defaults.balance),
        retries=parse_retries(node, where, defaults.retries),
        health=parse_health(node.get("health"), f"{where}.health", defaults.health),
        websocket=parse_websocket(node.get("websocket"), f"{where}.websocket", defaults.websocket),
        streaming=streaming,
        rate=None
        if node.get("rate") is None
        else parse_rate(node["rate"], f"{where}.rate", "route"),
    )


def parse_balance(node: dict[str, Any], where: str, default: str) -> str:
    value = node.get("balance", default)
    if value not in BALANCE_MODES:
        modes = ", ".join(BALANCE_MODES)
        raise ConfigError(f"{field_path(where, 'balance')}: expected one of {modes}, got {value!r}")
    return str(value)


def parse_retries(node: dict[str, Any], where: str, default: int) -> int:
    return integer(node.get("retries"), field_path(where, "retries"), default, minimum=0, maximum=5)


def parse_health(node: Any, where: str, defaults: Health) -> Health:
    node = mapping(
        node or {},
        where,
        {
            "max_failures",
            "eject_seconds",
            "fail_on_5xx",
            "check_interval",
            "check_path",
            "check_timeout",
        },
    )
    max_failures = integer(node.get("max_failures"), f"{where}.max_failures", defaults.max_failures)
    fail_on_5xx = boolean(node.get("fail_on_5xx"), f"{where}.fail_on_5xx", defaults.fail_on_5xx)
    check_path = node.get("check_path", defaults.check_path)
    if (
        not isinstance(check_path, str)
        or not check_path.startswith("/")
        or not check_path.isascii()
        or not check_path.isprintable()
        or any(c in check_path for c in " #")
    ):
        raise ConfigError(f"{where}.check_path: expected a plain path starting with '/'")
    return Health(
        max_failures=max_failures,
        eject_seconds=number(
            node.get("eject_seconds"), f"{where}.eject_seconds", defaults.eject_seconds
        ),
        fail_on_5xx=fail_on_5xx,
        check_interval=optional_number(node, "check_interval", where, defaults.check_interval),
        check_path=check_path,
        check_timeout=number(
            node.get("check_timeout"), f"{where}.check_timeout", defaults.check_timeout
        ),
    )


def parse_timeouts(node: Any, where: str, defaults: Timeouts) -> Timeouts:
    node = mapping(node or {}, where, {"connect", "read", "total", "body_idle"})
    return Timeouts(
        connect=number(node.get("connect"), f"{where}.connect", defaults.connect),
        read=number(node.get("read"), f"{where}.read", defaults.read),
        total=optional_number(node, "total", where, defaults.total),
        body_idle=number(node.get("body_idle"), f"{where}.body_idle", defaults.body_idle),
    )
