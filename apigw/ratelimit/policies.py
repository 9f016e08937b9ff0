"""Rate-limit policies compiled once per config: what one consumer on one route is held to.

A `PolicySet` holds the policies of a (plan, route) pair in a fixed order (the plan's rate, its
quotas, the route's shared rate), the `RateLimit-Policy` field they announce, and renders the
`RateLimit` field and the 429 of a decision. The stores (local, Redis) only count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import hdrs

from apigw.config.plans import Plan, Rate
from apigw.config.routes import Route
from apigw.shared.errors import ProblemError
from apigw.shared.headers import RATELIMIT_HEADER, RATELIMIT_POLICY_HEADER

QUOTA_EXCEEDED = "https://iana.org/assignments/http-problem-types#quota-exceeded"
REDUCED_CAPACITY = "https://iana.org/assignments/http-problem-types#temporary-reduced-capacity"

GCRA = "g"
QUOTA = "q"
_SPANS = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy. GCRA: `interval` seconds between requests, `burst` at once. Quota: `limit`
    per calendar `period`. `scope` is "" for the consumer's own counters, else the route prefix
    whose counter every consumer shares."""

    name: str
    kind: str
    interval: float = 0.0
    burst: int = 0
    limit: int = 0
    period: str = ""
    scope: str = ""
    # Derived once, read on every request: burst x interval (GCRA), and the kind as a flag.
    tolerance: float = field(init=False, repr=False, compare=False)
    is_rate: bool = field(init=False, repr=False, compare=False)
    # What the Redis script (script.lua) is told of this policy: kind, then a and b.
    script_args: tuple[str | int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_rate", self.kind == GCRA)
        # Sums of float intervals (0.1 + 0.1 + ...) must not refuse a burst's last request.
        object.__setattr__(self, "tolerance", self.burst * self.interval + 1e-9)
        script_args = (
            (GCRA, repr(self.interval * 1000.0), self.burst)
            if self.kind == GCRA
            else (QUOTA, self.limit, self.period)
        )
        object.__setattr__(self, "script_args", script_args)

    def divided(self, workers: int) -> Policy:
        """This worker's share when each of `workers` processes counts alone: never more in
        total than the policy allows (rounded down, at least 1)."""
        if workers == 1:
            return self
        if self.kind == GCRA:
            return Policy(
                self.name,
                GCRA,
                interval=self.interval * workers,
                burst=max(1, self.burst // workers),
                scope=self.scope,
            )
        return Policy(
            self.name,
            QUOTA,
            limit=max(1, self.limit // workers),
            period=self.period,
            scope=self.scope,
        )

    def window(self, now: float) -> int:
        """The `w` this policy announces: a GCRA's whole burst comes back in burst x interval;
        a quota's window is its calendar period (this month's length for a month)."""
        if self.kind == GCRA:
            return max(1, math.ceil(self.burst * self.interval - 1e-9))
        if self.period == "month":
            start, end, _ = month_bounds(now)
            return int(end - start)
        return _SPANS[self.period]

    def announced(self, now: float) -> str:
        quota = self.burst if self.kind == GCRA else self.limit
        return f'"{self.name}";q={quota};w={self.window(now)}'


def rate_policy(rate: Rate, scope: str = "") -> Policy:
    return Policy(rate.name, GCRA, interval=rate.per / rate.limit, burst=rate.burst, scope=scope)


def month_bounds(now: float) -> tuple[float, float, int]:
    """Start and end (Unix seconds) of the UTC month holding `now`, and its id (y*12 + m-1)."""
    day = datetime.fromtimestamp(now, UTC)
    start = datetime(day.year, day.month, 1, tzinfo=UTC)
    end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    return start.timestamp(), end.timestamp(), day.year * 12 + day.month - 1


class Calendar:
    """Calendar periods in UTC; the month is recomputed only when one ends."""

    __slots__ = ("_month",)

    def __init__(self) -> None:
        self._month = (0.0, 0.0, 0)

    def period(self, kind: str, now: float) -> tuple[int, float]:
        """The id of the period of `kind` holding `now`, and when it ends."""
        span = _SPANS.get(kind)
        if span is not None:
            # As LocalStore.admit computes it (the operand is positive: truncation is floor).
            ident = int(now / span)
            return ident, float((ident + 1) * span)
        start, end, ident = self._month
        if not start <= now < end:
            self._month = start, end, ident = month_bounds(now)
        return ident, end


class Limits:
    """Policies one consumer meets on one route, in the order they are reported, with the
    `RateLimit-Policy` field they announce."""

    __slots__ = ("field", "field_until", "names", "policies", "script_args")

    def __init__(self, policies: tuple[Policy, ...]) -> None:
        self.policies = policies
        self.names = tuple(p.name for p in policies)
        # Every policy's arguments to the Redis script, in order: the same on every request.
        self.script_args = tuple(arg for p in policies for arg in p.script_args)
        # The RateLimit-Policy text, valid until `field_until` (a month's end changes its `w`).
        self.field = ""
        self.field_until = -math.inf

    def policy_field(self, now: float) -> str:
        if now >= self.field_until:
            self.field = ", ".join(p.announced(now) for p in self.policies)
            months = [month_bounds(now)[1] for p in self.policies if p.period == "month"]
            self.field_until = min(months) if months else math.inf
        return self.field


class PolicySet:
    """`exact`: what a shared store (Redis) enforces; `local`: each worker's share when
    workers count alone (`divide_by_workers`), the same object otherwise."""

    __slots__ = ("exact", "local")

    def __init__(self, policies: tuple[Policy, ...], workers: int) -> None:
        self.exact = Limits(policies)
        self.local = (
            self.exact if workers == 1 else Limits(tuple(p.divided(workers) for p in policies))
        )


def limit_field(name: str, remaining: int, wait: float) -> str:
    """One `RateLimit` item: requests possible now, and seconds until more are possible."""
    return limit_item(name, remaining, math.ceil(wait - 1e-9) if wait > 0 else 0)


def limit_item(name: str, remaining: int, seconds: int) -> str:
    """The item's text, the wait already in whole seconds (LocalStore rounds it itself)."""
    return f'"{name}";r={remaining};t={seconds}'


def too_many_requests(
    violated: list[str], retry_after: float, fields: tuple[str, str]
) -> ProblemError:
    """The 429: `fields` are RateLimit-Policy and RateLimit as they stand (nothing charged)."""
    seconds = max(1, math.ceil(retry_after - 1e-9))
    return ProblemError(
        429,
        f"Rate limit exceeded ({', '.join(violated)}); retry in {seconds} s.",
        headers={
            RATELIMIT_POLICY_HEADER: fields[0],
            RATELIMIT_HEADER: fields[1],
            hdrs.RETRY_AFTER: str(seconds),
        },
        problem_type=QUOTA_EXCEEDED,
        title="Quota exceeded",
        reason="rate_limited",
        extra={"violated-policies": violated},
    )


def policy_sets(
    plans: Mapping[str, Plan], routes: tuple[Route, ...], workers: int
) -> dict[str, dict[str, PolicySet | None]]:
    """For each route prefix, the policy set of each plan (None: nothing to count)."""
    table: dict[str, dict[str, PolicySet | None]] = {}
    for route in routes:
        shared = () if route.rate is None else (rate_policy(route.rate, route.prefix),)
        by_plan: dict[str, PolicySet | None] = {}
        for name, plan in plans.items():
            own: list[Policy] = []
            if plan.rate is not None:
                own.append(rate_policy(plan.rate))
            own.extend(Policy(q.name, QUOTA, limit=q.limit, period=q.per) for q in plan.quotas)
            policies = (*own, *shared)
            by_plan[name] = PolicySet(policies, workers) if policies else None
        table[route.prefix] = by_plan
    return table
