"""Plans (rate with burst, calendar quotas) and the `rate_limits:` section: typed, frozen, checked.

A plan is what a consumer may do; a route's own `rate:` is shared by every consumer of the
route. The gateway core compiles both into policies (apigw/policies.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from apigw.config.fields import ConfigError, boolean, integer, mapping, number

# Policy names become Structured Field strings and Redis key parts: keep them plain.
_POLICY_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PLAN_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_PERIOD = re.compile(r"([0-9]+)\s*([smh])")
_PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600}
QUOTA_PERIODS = ("minute", "hour", "day", "month")
STORES = ("local", "redis")
ON_STORE_ERROR = ("local", "allow", "deny")


@dataclass(frozen=True, slots=True)
class Rate:
    """`limit` requests per `per` seconds sustained, and up to `burst` at once (GCRA)."""

    limit: int
    per: float
    burst: int
    name: str


@dataclass(frozen=True, slots=True)
class Quota:
    """At most `limit` requests per calendar `per` (minute, hour, day, month; UTC)."""

    name: str
    limit: int
    per: str


@dataclass(frozen=True, slots=True)
class Plan:
    name: str
    rate: Rate | None = None
    quotas: tuple[Quota, ...] = ()

    @property
    def unlimited(self) -> bool:
        return self.rate is None and not self.quotas


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    store: str = "local"  # one of STORES
    # May hold a password: never shown in repr() or a log line.
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    on_store_error: str = "local"  # one of ON_STORE_ERROR
    redis_timeout: float = 0.05  # seconds, for connecting and for each call
    redis_pool: int = 32  # connections per worker
    retry_interval: float = 1.0  # seconds between probes while the store is unreachable
    key_prefix: str = "gw"
    divide_by_workers: bool = False  # local counting: each worker gets limit / workers
    workers: int = 1  # set by the gunicorn hooks from the worker count


def parse_period(node: Any, where: str) -> float:
    """`1s`, `10s`, `1m`, `1h`, or a number of seconds."""
    if isinstance(node, str):
        match = _PERIOD.fullmatch(node.strip())
        if match is None or int(match.group(1)) == 0:
            raise ConfigError(f"{where}: expected a period such as 1s, 10s, 1m or 1h, got {node!r}")
        return float(int(match.group(1)) * _PERIOD_UNITS[match.group(2)])
    return number(node, where, 1.0)


def _required_count(node: dict[str, Any], where: str) -> int:
    if node.get("limit") is None:
        raise ConfigError(f"{where}.limit: required (requests per period)")
    return integer(node["limit"], f"{where}.limit", 1)


def _policy_name(node: Any, where: str) -> str:
    if not isinstance(node, str) or not _POLICY_NAME.fullmatch(node):
        raise ConfigError(f"{where}: 1-64 letters, digits, '.', '_' or '-', got {node!r}")
    return node


def parse_rate(node: Any, where: str, default_name: str) -> Rate:
    node = mapping(node, where, {"limit", "per", "burst", "name"})
    limit = _required_count(node, where)
    per = parse_period(node.get("per", "1s"), f"{where}.per")
    burst = integer(node.get("burst"), f"{where}.burst", limit)
    name = _policy_name(node.get("name", default_name), f"{where}.name")
    return Rate(limit=limit, per=per, burst=burst, name=name)


def _parse_quota(node: Any, where: str) -> Quota:
    node = mapping(node, where, {"name", "limit", "per"})
    per = node.get("per")
    if per not in QUOTA_PERIODS:
        raise ConfigError(f"{where}.per: expected one of {', '.join(QUOTA_PERIODS)}, got {per!r}")
    return Quota(
        name=_policy_name(node.get("name", per), f"{where}.name"),
        limit=_required_count(node, f"{where}"),
        per=per,
    )


def _parse_plan(name: Any, node: Any, where: str) -> Plan:
    if not isinstance(name, str) or not _PLAN_NAME.fullmatch(name):
        raise ConfigError(f"{where}: plan names are 1-64 letters, digits, '.', '_' or '-'")
    node = mapping(node or {}, where, {"rate", "quotas"})
    rate = None if node.get("rate") is None else parse_rate(node["rate"], f"{where}.rate", "burst")
    raw_quotas = node.get("quotas") or []
    if not isinstance(raw_quotas, list):
        raise ConfigError(f"{where}.quotas: expected a list of {{name, limit, per}}")
    quotas = tuple(_parse_quota(q, f"{where}.quotas[{i}]") for i, q in enumerate(raw_quotas))
    seen = {rate.name} if rate is not None else set()
    for i, quota in enumerate(quotas):
        if quota.name in seen:
            raise ConfigError(f"{where}.quotas[{i}].name: {quota.name!r} is used twice in the plan")
        seen.add(quota.name)
    return Plan(name=name, rate=rate, quotas=quotas)


def parse_plans(node: Any) -> dict[str, Plan]:
    """The `plans:` mapping; `unlimited` exists even when not declared."""
    node = node or {}
    if not isinstance(node, dict):
        raise ConfigError("plans: expected a mapping of plan name to {rate, quotas}")
    plans = {"unlimited": Plan(name="unlimited")}
    for name, body in node.items():
        plans[name] = _parse_plan(name, body, f"plans.{name}")
    return plans


def parse_rate_limits(node: Any) -> RateLimitSettings:
    where = "rate_limits"
    node = mapping(
        node or {},
        where,
        {
            "store",
            "redis_url",
            "on_store_error",
            "redis_timeout",
            "redis_pool",
            "retry_interval",
            "key_prefix",
            "divide_by_workers",
        },
    )
    defaults = RateLimitSettings()
    store = node.get("store", defaults.store)
    if store not in STORES:
        raise ConfigError(f"{where}.store: expected one of {', '.join(STORES)}, got {store!r}")
    on_error = node.get("on_store_error", defaults.on_store_error)
    if on_error not in ON_STORE_ERROR:
        raise ConfigError(
            f"{where}.on_store_error: expected one of {', '.join(ON_STORE_ERROR)}, got {on_error!r}"
        )
    url = node.get("redis_url", defaults.redis_url)
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        # The value may hold a password: it is never quoted back.
        raise ConfigError(f"{where}.redis_url: expected a redis://, rediss:// or unix:// URL")
    prefix = node.get("key_prefix", defaults.key_prefix)
    if not isinstance(prefix, str) or not _POLICY_NAME.fullmatch(prefix):
        raise ConfigError(f"{where}.key_prefix: 1-64 letters, digits, '.', '_' or '-'")
    divide = boolean(node.get("divide_by_workers"), f"{where}.divide_by_workers", False)
    return RateLimitSettings(
        store=store,
        redis_url=url,
        on_store_error=on_error,
        redis_timeout=number(node.get("redis_timeout"), f"{where}.redis_timeout", 0.05),
        redis_pool=integer(node.get("redis_pool"), f"{where}.redis_pool", defaults.redis_pool),
        retry_interval=number(node.get("retry_interval"), f"{where}.retry_interval", 1.0),
        key_prefix=prefix,
        divide_by_workers=divide,
    )
