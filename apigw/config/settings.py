"""Typed, frozen settings, parsed and checked once at start-up.

Every problem is a `ConfigError` whose message is one line naming the field or variable.
This module holds the top-level settings and the load/parse entry points; the parts live in
`fields` (shared checks), `routes` (per-route), `process` (limits, pool, shutdown) and
`consumers`; `apigw.config` re-exports what callers use.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apigw.config.consumers import DEMO_KEY_DIGEST, Consumer, digest_of, parse_consumers
from apigw.config.fields import (
    ConfigError,
    byte_size,
    env_flag,
    expand_tree,
    mapping,
)
from apigw.config.observability import (
    AccessLogSettings,
    AdminSettings,
    MetricsSettings,
    TracingSettings,
    parse_access_log,
    parse_admin,
    parse_metrics,
    parse_tracing,
)
from apigw.config.plans import Plan, RateLimitSettings, parse_plans, parse_rate_limits
from apigw.config.process import (
    PoolSettings,
    ServerLimits,
    Shutdown,
    parse_limits,
    parse_pool,
    parse_shutdown,
)
from apigw.config.routes import (
    DEFAULT_MAX_BODY_BYTES,
    Health,
    Route,
    Timeouts,
    parse_balance,
    parse_health,
    parse_retries,
    parse_route,
    parse_timeouts,
)
from apigw.config.streaming import (
    Streaming,
    WebSocketSettings,
    parse_streaming,
    parse_websocket,
)
from apigw.shared.headers import DEFAULT_SERVER_HEADER

# Lets `make run` work out of the box; --production refuses it.
DEMO_GATEWAY_SECRET = "demo-gateway-secret-change-me"  # noqa: S105
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    routes: tuple[Route, ...]
    consumers: tuple[Consumer, ...]
    gateway_secret: str = field(repr=False)
    # Frozen dataclasses, so one shared default is safe; ruff cannot see that across modules.
    pool: PoolSettings = PoolSettings()  # noqa: RUF009
    limits: ServerLimits = ServerLimits()  # noqa: RUF009
    shutdown: Shutdown = Shutdown()  # noqa: RUF009
    access_log: AccessLogSettings = AccessLogSettings()  # noqa: RUF009
    admin: AdminSettings = AdminSettings()  # noqa: RUF009
    metrics: MetricsSettings = MetricsSettings()  # noqa: RUF009
    tracing: TracingSettings = TracingSettings()  # noqa: RUF009
    server_header: str = DEFAULT_SERVER_HEADER
    # Plan name -> plan; always holds "unlimited".
    plans: Mapping[str, Plan] = field(default_factory=lambda: {"unlimited": Plan("unlimited")})
    rate_limits: RateLimitSettings = RateLimitSettings()  # noqa: RUF009
    production: bool = False
    source: str = ""


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """What a backend service needs: the gateway secrets it accepts."""

    accepted_secrets: tuple[str, ...] = field(repr=False)
    production: bool = False


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
    top = mapping(
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
            "server_header",
            "websocket",
            "streaming",
            "plans",
            "default_plan",
            "consumers_file",
            "rate_limits",
            "admin",
            "metrics",
            "tracing",
        },
    )
    top = expand_tree(top, env, "")
    limits = parse_limits(top.get("limits"))
    # Every route starts from these; a route's own keys override them.
    defaults = Route(
        prefix="/",
        upstreams=(),
        timeouts=parse_timeouts(top.get("timeouts"), "timeouts", Timeouts()),
        max_body_bytes=byte_size(top, "max_body_bytes", "", DEFAULT_MAX_BODY_BYTES),
        balance=parse_balance(top, "", "round_robin"),
        retries=parse_retries(top, "", 1),
        health=parse_health(top.get("health"), "health", Health()),
        websocket=parse_websocket(top.get("websocket"), "websocket", WebSocketSettings()),
        streaming=parse_streaming(top.get("streaming"), "streaming", Streaming()),
    )
    raw_routes = top.get("routes")
    if not isinstance(raw_routes, list) or not raw_routes:
        raise ConfigError("routes: expected a non-empty list of {prefix, upstreams}")
    routes = tuple(parse_route(r, f"routes[{i}]", defaults) for i, r in enumerate(raw_routes))
    seen: set[str] = set()
    for i, route in enumerate(routes):
        if route.prefix in seen:
            raise ConfigError(f"routes[{i}].prefix: {route.prefix!r} is declared twice")
        seen.add(route.prefix)

    plans = parse_plans(top.get("plans"))
    default_plan = top.get("default_plan", "unlimited")
    if default_plan not in plans:
        raise ConfigError(f"default_plan: no plan named {default_plan!r} under plans:")
    _check_policy_names(plans, routes)
    consumers = parse_consumers(
        top.get("consumers"),
        _consumers_file(top.get("consumers_file"), source),
        plans,
        default_plan,
        frozenset(seen),
    )
    digests = {d for c in consumers for d in c.digests}

    pool = parse_pool(top.get("pool"))
    access_log = parse_access_log(top.get("access_log"))
    server_header = top.get("server_header", DEFAULT_SERVER_HEADER)
    if (
        not isinstance(server_header, str)
        or not server_header
        or not server_header.isascii()
        or not server_header.isprintable()
    ):
        raise ConfigError(f"server_header: expected printable ASCII text, got {server_header!r}")

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
        shutdown=parse_shutdown(top.get("shutdown")),
        access_log=access_log,
        admin=parse_admin(top.get("admin")),
        metrics=parse_metrics(top.get("metrics")),
        tracing=parse_tracing(top.get("tracing")),
        server_header=server_header,
        plans=plans,
        rate_limits=parse_rate_limits(top.get("rate_limits")),
        production=production,
        source=source,
    )


def _consumers_file(node: Any, source: str) -> Path | None:
    """`consumers_file:` is relative to the config file that names it."""
    if node is None:
        return None
    if not isinstance(node, str) or not node:
        raise ConfigError("consumers_file: expected the path of a JSON Lines file")
    path = Path(node)
    if not path.is_absolute() and source:
        path = Path(source).parent / path
    return path


def _check_policy_names(plans: Mapping[str, Plan], routes: tuple[Route, ...]) -> None:
    """A response names each policy it reports: a route's rate may not share a plan's name."""
    for route in routes:
        if route.rate is None:
            continue
        for plan in plans.values():
            own = {q.name for q in plan.quotas} | ({plan.rate.name} if plan.rate else set())
            if route.rate.name in own:
                raise ConfigError(
                    f"routes: the rate of {route.prefix} is named {route.rate.name!r} like a "
                    f"policy of plan {plan.name!r}; give it another name (rate.name)"
                )


def default_config_path(env: Mapping[str, str]) -> Path:
    explicit = env.get("GATEWAY_CONFIG")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parents[2] / "gateway.yaml"


def read_yaml(text: str, source: str) -> Any:
    """The document in `text`, parsed by PyYAML's safe loader; a YAML error is a ConfigError.

    PyYAML is needed only while a config is read (at start-up and on reload), so a process
    that has not imported it already drops its modules again afterwards: about 1 MB a worker
    would otherwise carry for nothing. Hence the pure-Python loader: libyaml's extension
    module, once imported, can never be dropped. It parses the shipped config in about 7 ms
    and 1,000 routes in about 150 ms (libyaml: 1 and 30 ms); a reload parses in a thread.
    """
    resident = "yaml" in sys.modules
    if not resident:
        sys.modules["yaml._yaml"] = None  # type: ignore[assignment]  # refused: pure Python
    try:
        return _safe_load(text, source)
    finally:
        if not resident:
            for name in [m for m in sys.modules if m == "yaml" or m.startswith("yaml.")]:
                del sys.modules[name]
            # Modules are reference cycles (their functions point back at their globals).
            gc.collect()


def _safe_load(text: str, source: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}{at}: {problem}") from None


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
    document = read_yaml(text, f"config file {config_path}")
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
