"""What the gateway tells operators: the admin surface, metrics, the access log and tracing."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from yarl import URL

from apigw.config.fields import ConfigError, boolean, integer, mapping, number

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
STDERR = "stderr"


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """Who may read /metrics, /status and /status.json: client addresses in `allow`."""

    allow: tuple[IPNetwork, ...] = LOOPBACK


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class AccessLogSettings:
    """One JSON line per request, to `target` (stderr or a file path)."""

    enabled: bool = True
    target: str = STDERR
    # Lines waiting for the writer thread; past it lines are dropped and counted.
    queue: int = 10_000


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """W3C trace context is always kept; spans are exported only with `otlp_endpoint`."""

    otlp_endpoint: str | None = None
    service_name: str = "apigw"
    sample_ratio: float = 1.0
    # Seconds between two batches sent to the collector.
    export_interval: float = 1.0


def parse_admin(node: Any) -> AdminSettings:
    node = mapping(node or {}, "admin", {"allow"})
    raw = node.get("allow", None)
    if raw is None:
        return AdminSettings()
    if not isinstance(raw, list):
        raise ConfigError("admin.allow: expected a list of addresses or CIDR networks")
    nets: list[IPNetwork] = []
    for i, item in enumerate(raw):
        try:
            nets.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise ConfigError(
                f"admin.allow[{i}]: expected an address or CIDR network, got {item!r}"
            ) from None
    return AdminSettings(allow=tuple(nets))


def parse_metrics(node: Any) -> MetricsSettings:
    if node is None or isinstance(node, (bool, str)):
        return MetricsSettings(enabled=boolean(node, "metrics", True))
    node = mapping(node, "metrics", {"enabled"})
    return MetricsSettings(enabled=boolean(node.get("enabled"), "metrics.enabled", True))


def parse_access_log(node: Any) -> AccessLogSettings:
    """`access_log: true|false` (the original form) or `{enabled, target, queue}`."""
    if node is None or isinstance(node, (bool, str)):
        return AccessLogSettings(enabled=boolean(node, "access_log", True))
    node = mapping(node, "access_log", {"enabled", "target", "queue"})
    target = node.get("target", STDERR)
    if not isinstance(target, str) or not target or "\x00" in target:
        raise ConfigError(f"access_log.target: expected 'stderr' or a file path, got {target!r}")
    return AccessLogSettings(
        enabled=boolean(node.get("enabled"), "access_log.enabled", True),
        target=target,
        queue=integer(node.get("queue"), "access_log.queue", 10_000, maximum=10_000_000),
    )


def parse_tracing(node: Any) -> TracingSettings:
    node = mapping(
        node or {},
        "tracing",
        {"otlp_endpoint", "service_name", "sample_ratio", "export_interval"},
    )
    defaults = TracingSettings()
    endpoint = node.get("otlp_endpoint")
    if endpoint is not None:
        url = URL(str(endpoint)) if isinstance(endpoint, str) else None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(
                "tracing.otlp_endpoint: expected an http(s) URL such as "
                f"http://127.0.0.1:4318/v1/traces, got {endpoint!r}"
            )
    name = node.get("service_name", defaults.service_name)
    if not isinstance(name, str) or not name or not name.isprintable():
        raise ConfigError(f"tracing.service_name: expected a name, got {name!r}")
    ratio = number(node.get("sample_ratio"), "tracing.sample_ratio", 1.0, minimum=0)
    if ratio > 1:
        raise ConfigError(f"tracing.sample_ratio: expected 0 to 1, got {ratio!r}")
    return TracingSettings(
        otlp_endpoint=endpoint,
        service_name=name,
        sample_ratio=ratio,
        export_interval=number(
            node.get("export_interval"), "tracing.export_interval", defaults.export_interval
        ),
    )
