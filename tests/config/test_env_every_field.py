"""`${VAR}` works in every scalar of the config, numbers and booleans included: a document
whose every value comes from the environment parses exactly like the same values written out."""

from __future__ import annotations

from typing import Any

import pytest

from apigw.config import ConfigError, parse_gateway_settings
from apigw.config.consumers import digest_of
from tests.support import TEST_SECRET

SECRET = {"GATEWAY_SECRET": TEST_SECRET}
HEALTH = {
    "max_failures": 4,
    "eject_seconds": 2.5,
    "fail_on_5xx": True,
    "check_interval": 3,
    "check_path": "/ping",
    "check_timeout": 1.5,
}
TIMEOUTS = {"connect": 2, "read": 9.5, "total": 100, "body_idle": 7}
WEBSOCKET = {
    "enabled": False,
    "idle_timeout": 40,
    "max_lifetime": 600,
    "max_connections": 12,
    "key_protocol": True,
}
# Every field the config knows, each set to a value other than its default.
EVERY_FIELD: dict[str, Any] = {
    "routes": [
        {
            "prefix": "/users",
            "upstreams": ["http://127.0.0.1:9001", "http://127.0.0.1:9002"],
            "timeouts": TIMEOUTS,
            "max_body_bytes": "3 MiB",
            "balance": "least_outstanding",
            "retries": 3,
            "health": HEALTH,
            "websocket": WEBSOCKET,
            "streaming": {"content_types": ["text/x-feed"], "paths": ["/users/feed"]},
            "rate": {"limit": 50, "per": "10s", "burst": 60, "name": "users-route"},
        }
    ],
    "consumers": [
        {
            "name": "alice",
            "keys_sha256": [digest_of(b"alice-key-0123456789").hex()],
            "plan": "free",
            "routes": ["/users"],
        }
    ],
    "plans": {
        "free": {
            "rate": {"limit": 10, "per": "1m", "burst": 20, "name": "per-minute"},
            "quotas": [{"name": "daily", "limit": 1000, "per": "day"}],
        }
    },
    "default_plan": "free",
    "rate_limits": {
        "store": "redis",
        "redis_url": "redis://127.0.0.1:6390/2",
        "on_store_error": "deny",
        "redis_timeout": 0.2,
        "redis_pool": 8,
        "retry_interval": 3,
        "key_prefix": "edge",
        "divide_by_workers": True,
    },
    "pool": {"max_connections": 77, "idle_timeout": 0.5},
    "timeouts": TIMEOUTS,
    "access_log": {"enabled": True, "target": "/var/log/apigw/access.log", "queue": 500},
    "admin": {"allow": ["10.1.0.0/16", "::1"]},
    "metrics": {"enabled": False},
    "tracing": {
        "otlp_endpoint": "http://collector:4318/v1/traces",
        "service_name": "edge",
        "sample_ratio": 0.25,
        "export_interval": 2,
    },
    "max_body_bytes": 12345,
    "limits": {
        "max_request_line": 4000,
        "max_header_field": 3000,
        "max_header_bytes": 20000,
        "max_headers": 50,
        "max_in_flight": 99,
        "max_streams": 55,
        "idle_timeout": 9,
        "lingering_time": 1,
    },
    "balance": "least_outstanding",
    "retries": 2,
    "health": HEALTH,
    "shutdown": {"drain_delay": 0.5, "grace": 12},
    "server_header": "edge",
    "websocket": WEBSOCKET,
    "streaming": {"content_types": ["application/x-ndjson"], "idle_timeout": 45},
}


def _as_env(node: Any, env: dict[str, str]) -> Any:
    """The same document with every scalar replaced by a ${VAR} that the environment holds."""
    if isinstance(node, dict):
        return {k: _as_env(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [_as_env(v, env) for v in node]
    name = f"V{len(env)}"
    env[name] = str(node).lower() if isinstance(node, bool) else str(node)
    return "${" + name + "}"


def test_every_field_takes_its_value_from_the_environment() -> None:
    env: dict[str, str] = {}
    templated = _as_env(EVERY_FIELD, env)
    assert len(env) > 30  # every scalar above became a variable
    from_env = parse_gateway_settings(templated, {**SECRET, **env})
    written = parse_gateway_settings(EVERY_FIELD, SECRET)
    assert from_env == written
    assert written.routes[0].retries == 3 and written.pool.max_connections == 77
    assert written.access_log.queue == 500 and written.routes[0].health.fail_on_5xx is True
    assert written.tracing.sample_ratio == 0.25 and written.metrics.enabled is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("retries", "many"),
        ("access_log", "perhaps"),
        ("access_log.queue", "lots"),
        ("tracing.sample_ratio", "half"),
        ("pool.max_connections", "-3"),
        ("health.max_failures", "1.5"),
    ],
)
def test_a_bad_value_from_the_environment_names_the_field(field: str, value: str) -> None:
    document: dict[str, Any] = {"routes": EVERY_FIELD["routes"]}
    node = document
    *parents, leaf = field.split(".")
    for parent in parents:
        node = node.setdefault(parent, {})
    node[leaf] = "${BAD}"
    with pytest.raises(ConfigError) as info:
        parse_gateway_settings(document, {**SECRET, "BAD": value})
    assert str(info.value).startswith(field + ":")
    assert "\n" not in str(info.value)
