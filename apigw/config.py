"""Typed, frozen settings, parsed and checked once at start-up.

Every problem is a `ConfigError` whose message is one line naming the field or variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yarl import URL

from apigw.keys import DEMO_KEY_DIGEST, Consumer, digest_of

# Lets `make run` work out of the box; --production refuses it.
DEMO_GATEWAY_SECRET = "demo-gateway-secret-change-me"  # noqa: S105
MIN_SECRET_LENGTH = 16
# Paths the gateway serves itself; no route may claim them.
RESERVED_PREFIXES = ("/docs", "/healthz", "/readyz")

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_CONSUMER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")
_BYTE_UNITS = {"": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
_BYTE_SIZE = re.compile(r"([0-9]+)\s*([KMGkmg][iI][bB])?")
# An API body larger than this is almost always a mistake; routes that take uploads raise it.
DEFAULT_MAX_BODY_BYTES = 10 << 20
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class ConfigError(Exception):
    """A configuration problem, described in one line that names the field."""


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
    check_path: str = "/healthz"
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
    # An idle keep-alive connection, or one whose request head is still arriving, is closed
    # after this long: it is also the deadline for a slowly sent (slowloris) request head.
    idle_timeout: float = 15.0
    # After refusing a request whose body is still arriving, the rest is read and dropped for
    # at most this long before closing, so the client sees the answer rather than a reset.
    lingering_time: float = 2.0


_LIMIT_FIELDS = ("max_request_line", "max_header_field", "max_header_bytes", "max_headers")


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    routes: tuple[Route, ...]
    consumers: tuple[Consumer, ...]
    gateway_secret: str = field(repr=False)
    pool: PoolSettings = PoolSettings()
    limits: ServerLimits = ServerLimits()
    shutdown: Shutdown = Shutdown()
    access_log: bool = False
    production: bool = False
    source: str = ""


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What a backend service needs: the gateway secrets it accepts."""

    accepted_secrets: tuple[str, ...] = field(repr=False)
    production: bool = False


def env_flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}: expected one of 1/0, true/false, yes/no, on/off, got {raw!r}")


def substitute_env(value: str, env: Mapping[str, str], where: str) -> str:
    """Expand `${VAR}` and `${VAR:-default}` in one scalar."""

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        got = env.get(name)
        if got:
            return got
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set and has no default")

    return _ENV_REF.sub(expand, value)


def _expand_tree(node: Any, env: Mapping[str, str], where: str) -> Any:
    # Substituting after parsing means an environment value can never inject YAML structure.
    if isinstance(node, str):
        return substitute_env(node, env, where)
    if isinstance(node, list):
        return [_expand_tree(item, env, f"{where}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, dict):
        return {
            k: _expand_tree(v, env, f"{where}.{k}" if where else str(k)) for k, v in node.items()
        }
    return node


def _mapping(node: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(str(k) for k in node if k not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})"
        )
    return node


def _number(node: Any, where: str, default: float, *, minimum: float = 0.001) -> float:
    if node is None:
        return default
    return _checked_number(node, where, minimum)


def _optional_number(
    node: dict[str, Any], key: str, where: str, default: float | None
) -> float | None:
    """A number of seconds that `null` turns off; an absent key keeps the default."""
    if key not in node:
        return default
    if node[key] is None:
        return None
    return _checked_number(node[key], f"{where}.{key}", 0.001)


def _checked_number(node: Any, where: str, minimum: float) -> float:
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        try:
            node = float(str(node))
        except ValueError:
            raise ConfigError(f"{where}: expected a number of seconds, got {node!r}") from None
    if not node >= minimum:
        raise ConfigError(f"{where}: must be at least {minimum}, got {node!r}")
    return float(node)


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
    for reserved in RESERVED_PREFIXES:
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
}


def _parse_route(node: Any, where: str, defaults: Route) -> Route:
    """One `routes:` entry; what it leaves out comes from the top-level defaults."""
    node = _mapping(node, where, _ROUTE_FIELDS)
    prefix = _check_prefix(node.get("prefix"), f"{where}.prefix")
    ups = node.get("upstreams")
    if not isinstance(ups, list) or not ups:
        raise ConfigError(f"{where}.upstreams: expected a non-empty list of base URLs")
    upstreams = tuple(_check_upstream(u, f"{where}.upstreams[{i}]") for i, u in enumerate(ups))
    if len(set(upstreams)) != len(upstreams):
        raise ConfigError(f"{where}.upstreams: the same base URL is listed twice")
    return Route(
        prefix=prefix,
        upstreams=upstreams,
        timeouts=_parse_timeouts(node.get("timeouts"), f"{where}.timeouts", defaults.timeouts),
        max_body_bytes=_byte_size(node, "max_body_bytes", where, defaults.max_body_bytes),
        balance=_balance(node, where, defaults.balance),
        retries=_retries(node, where, defaults.retries),
        health=_parse_health(node.get("health"), f"{where}.health", defaults.health),
    )


def _balance(node: dict[str, Any], where: str, default: str) -> str:
    value = node.get("balance", default)
    if value not in BALANCE_MODES:
        raise ConfigError(
            f"{where}.balance: expected one of {', '.join(BALANCE_MODES)}, got {value!r}"
        )
    return str(value)


def _retries(node: dict[str, Any], where: str, default: int) -> int:
    value = node.get("retries", default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 5:
        raise ConfigError(f"{where}.retries: expected an integer from 0 to 5, got {value!r}")
    return value


def _parse_health(node: Any, where: str, defaults: Health) -> Health:
    node = _mapping(
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
    max_failures = node.get("max_failures", defaults.max_failures)
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1:
        raise ConfigError(
            f"{where}.max_failures: expected a positive integer, got {max_failures!r}"
        )
    fail_on_5xx = node.get("fail_on_5xx", defaults.fail_on_5xx)
    if not isinstance(fail_on_5xx, bool):
        raise ConfigError(f"{where}.fail_on_5xx: expected true or false, got {fail_on_5xx!r}")
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
        eject_seconds=_number(
            node.get("eject_seconds"), f"{where}.eject_seconds", defaults.eject_seconds
        ),
        fail_on_5xx=fail_on_5xx,
        check_interval=_optional_number(node, "check_interval", where, defaults.check_interval),
        check_path=check_path,
        check_timeout=_number(
            node.get("check_timeout"), f"{where}.check_timeout", defaults.check_timeout
        ),
    )


def _parse_shutdown(node: Any) -> Shutdown:
    node = _mapping(node or {}, "shutdown", {"drain_delay", "grace"})
    defaults = Shutdown()
    return Shutdown(
        drain_delay=_number(
            node.get("drain_delay"), "shutdown.drain_delay", defaults.drain_delay, minimum=0
        ),
        grace=_number(node.get("grace"), "shutdown.grace", defaults.grace),
    )


def _byte_size(node: dict[str, Any], key: str, where: str, default: int | None) -> int | None:
    if key not in node:
        return default
    value = node[key]
    if value is None:
        return None
    if isinstance(value, str):
        match = _BYTE_SIZE.fullmatch(value.strip())
        if match is not None:
            return int(match.group(1)) * _BYTE_UNITS[(match.group(2) or "").lower()]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"{where}.{key}: expected a byte count (integer >= 0, or e.g. '10 MiB') or null"
        )
    return value


def _parse_limits(node: Any) -> ServerLimits:
    node = _mapping(
        node or {}, "limits", {*_LIMIT_FIELDS, "max_in_flight", "idle_timeout", "lingering_time"}
    )
    defaults = ServerLimits()
    counts: dict[str, int] = {}
    for key in (*_LIMIT_FIELDS, "max_in_flight"):
        value = node.get(key, getattr(defaults, key))
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # from a ${VAR:-default} substitution
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"limits.{key}: expected a positive integer, got {value!r}")
        counts[key] = value
    if counts["max_request_line"] < 64 or counts["max_header_field"] < 64:
        raise ConfigError("limits: max_request_line and max_header_field must be at least 64")
    return ServerLimits(
        **counts,
        idle_timeout=_number(
            node.get("idle_timeout"), "limits.idle_timeout", defaults.idle_timeout
        ),
        lingering_time=_number(
            node.get("lingering_time"), "limits.lingering_time", defaults.lingering_time, minimum=0
        ),
    )


def _parse_timeouts(node: Any, where: str, defaults: Timeouts) -> Timeouts:
    node = _mapping(node or {}, where, {"connect", "read", "total", "body_idle"})
    return Timeouts(
        connect=_number(node.get("connect"), f"{where}.connect", defaults.connect),
        read=_number(node.get("read"), f"{where}.read", defaults.read),
        total=_optional_number(node, "total", where, defaults.total),
        body_idle=_number(node.get("body_idle"), f"{where}.body_idle", defaults.body_idle),
    )


def _parse_consumer(node: Any, where: str) -> Consumer:
    node = _mapping(node, where, {"name", "key_sha256"})
    name = node.get("name")
    if not isinstance(name, str) or not _CONSUMER_NAME.fullmatch(name):
        raise ConfigError(f"{where}.name: 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    digest = node.get("key_sha256")
    if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest.lower()):
        raise ConfigError(
            f"{where}.key_sha256: expected 64 hex digits (run `python -m apigw.keys NAME`)"
        )
    return Consumer(name=name, digest=bytes.fromhex(digest))


def _gateway_secret(env: Mapping[str, str]) -> str:
    secret = env.get("GATEWAY_SECRET", "") or DEMO_GATEWAY_SECRET
    if "," in secret:
        raise ConfigError(
            "GATEWAY_SECRET: the gateway sends one secret; a list is for the services"
        )
    _check_secret(secret, "GATEWAY_SECRET")
    return secret


def _check_secret(secret: str, where: str) -> None:
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{where}: must be at least {MIN_SECRET_LENGTH} characters")
    if not secret.isascii() or not secret.isprintable() or secret != secret.strip():
        raise ConfigError(f"{where}: must be printable ASCII without surrounding spaces")


def parse_gateway_settings(
    document: Any, env: Mapping[str, str], *, production: bool = False, source: str = ""
) -> GatewaySettings:
    """Build settings from a parsed YAML document and the environment."""
    if document is None:
        document = {}
    top = _mapping(
        document,
        "config",
        {
            "routes",
            "consumers",
            "pool",
            "timeouts",
            "access_log",
            "max_body_bytes",
            "limits",
            "balance",
            "retries",
            "health",
            "shutdown",
        },
    )
    top = _expand_tree(top, env, "")
    limits = _parse_limits(top.get("limits"))
    # Every route starts from these; a route's own keys override them.
    defaults = Route(
        prefix="/",
        upstreams=(),
        timeouts=_parse_timeouts(top.get("timeouts"), "timeouts", Timeouts()),
        max_body_bytes=_byte_size(top, "max_body_bytes", "config", DEFAULT_MAX_BODY_BYTES),
        balance=_balance(top, "config", "round_robin"),
        retries=_retries(top, "config", 1),
        health=_parse_health(top.get("health"), "health", Health()),
    )
    raw_routes = top.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise ConfigError("routes: expected a non-empty list of {prefix, upstreams}")
    routes = tuple(_parse_route(r, f"routes[{i}]", defaults) for i, r in enumerate(raw_routes))
    seen: set[str] = set()
    for i, route in enumerate(routes):
        if route.prefix in seen:
            raise ConfigError(f"routes[{i}].prefix: {route.prefix!r} is declared twice")
        seen.add(route.prefix)

    raw_consumers = top.get("consumers") or []
    if not isinstance(raw_consumers, list):
        raise ConfigError("consumers: expected a list of {name, key_sha256}")
    consumers = tuple(_parse_consumer(c, f"consumers[{i}]") for i, c in enumerate(raw_consumers))
    names: set[str] = set()
    digests: set[bytes] = set()
    for i, consumer in enumerate(consumers):
        if consumer.name in names:
            raise ConfigError(f"consumers[{i}].name: {consumer.name!r} is declared twice")
        if consumer.digest in digests:
            raise ConfigError(f"consumers[{i}].key_sha256: the same key is declared twice")
        names.add(consumer.name)
        digests.add(consumer.digest)

    pnode = _mapping(top.get("pool") or {}, "pool", {"max_connections", "idle_timeout"})
    max_conn = pnode.get("max_connections", _DEFAULT_POOL.max_connections)
    if isinstance(max_conn, bool) or not isinstance(max_conn, int) or max_conn < 1:
        raise ConfigError(f"pool.max_connections: expected a positive integer, got {max_conn!r}")
    pool = PoolSettings(
        max_connections=max_conn,
        idle_timeout=_number(
            pnode.get("idle_timeout"), "pool.idle_timeout", _DEFAULT_POOL.idle_timeout
        ),
    )
    access_log = top.get("access_log", False)
    if not isinstance(access_log, bool):
        raise ConfigError(f"access_log: expected true or false, got {access_log!r}")

    secret = _gateway_secret(env)
    if digest_of(secret.encode()) in digests:
        raise ConfigError("GATEWAY_SECRET: must not be the same value as a client key")
    production = production or env_flag(env, "GATEWAY_PRODUCTION")
    if production:
        if DEMO_KEY_DIGEST in digests:
            raise ConfigError(
                "consumers: the demo key is configured; remove it before running in production"
            )
        if secret == DEMO_GATEWAY_SECRET:
            raise ConfigError("GATEWAY_SECRET: the demo secret cannot be used in production")
    return GatewaySettings(
        routes=routes,
        consumers=consumers,
        gateway_secret=secret,
        pool=pool,
        limits=limits,
        shutdown=_parse_shutdown(top.get("shutdown")),
        access_log=access_log,
        production=production,
        source=source,
    )


def default_config_path(env: Mapping[str, str]) -> Path:
    explicit = env.get("GATEWAY_CONFIG")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parent.parent / "gateway.yaml"


def load_gateway_settings(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    production: bool = False,
) -> GatewaySettings:
    env = os.environ if env is None else env
    config_path = Path(path) if path is not None else default_config_path(env)
    try:
        text = config_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {config_path}: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {config_path}{at}: {problem}") from None
    return parse_gateway_settings(document, env, production=production, source=str(config_path))


def load_service_settings(
    env: Mapping[str, str] | None = None, *, production: bool = False
) -> ServiceSettings:
    """GATEWAY_SECRET on a service may list several secrets (comma-separated) for rotation."""
    env = os.environ if env is None else env
    raw = env.get("GATEWAY_SECRET", "") or DEMO_GATEWAY_SECRET
    secrets = tuple(s.strip() for s in raw.split(","))
    for i, secret in enumerate(secrets):
        _check_secret(secret, f"GATEWAY_SECRET[{i}]" if len(secrets) > 1 else "GATEWAY_SECRET")
    production = production or env_flag(env, "GATEWAY_PRODUCTION")
    if production and DEMO_GATEWAY_SECRET in secrets:
        raise ConfigError("GATEWAY_SECRET: the demo secret cannot be used in production")
    return ServiceSettings(accepted_secrets=secrets, production=production)
