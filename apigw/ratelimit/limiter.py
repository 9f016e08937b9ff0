"""Rate limits and quotas: the store in use, and what happens while a Redis store fails.

`store: local` counts in the process. `store: redis` counts on Redis; while Redis cannot be
reached (an error or a timeout: a circuit breaker opens and probes again every
`retry_interval`), `on_store_error` decides: `local` counts in the process, `allow` lets
requests through unlimited, `deny` answers 503 with Retry-After. Never a 500; one log line when
the store goes away and one when it is back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import hdrs, web

from apigw.config.plans import RateLimitSettings
from apigw.ratelimit.local import LocalStore
from apigw.ratelimit.policies import REDUCED_CAPACITY, PolicySet
from apigw.shared.appkeys import OBSERVER_KEY, RATE_LIMITER_KEY, SETTINGS_KEY
from apigw.shared.errors import ProblemError

if TYPE_CHECKING:
    from apigw.ratelimit.redis_store import RedisStore

log = logging.getLogger("apigw.ratelimit")
# What a store failure looks like: redis-py's errors (connection, timeout, script), socket
# errors, and anything else the client raises: a library surprise must not become a 500.
STORE_ERRORS = Exception
# Consecutive failures that open the breaker: one slow answer on a busy host is not an outage
# (that request alone gets on_store_error), three in a row are.
FAILURES_TO_OPEN = 3


class RateLimiter:
    """Admits or refuses one request of a consumer against its policy set."""

    __slots__ = (
        "_clock",
        "_failures",
        "_probing",
        "_retry_at",
        "available",
        "is_local",
        "local",
        "on_store_error",
        "redis",
        "retry_interval",
        "store_errors",
        "where",
    )

    def __init__(self, settings: RateLimitSettings, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.local = LocalStore(clock)
        self.is_local = settings.store == "local"
        self.redis: RedisStore | None = None
        self.on_store_error = settings.on_store_error
        self.retry_interval = settings.retry_interval
        # For metrics (issue 10): False while the Redis store cannot be reached (the breaker
        # is open), and how many calls to it failed.
        self.available = True
        self.store_errors = 0
        self._retry_at = 0.0
        self._probing = False
        self._failures = 0
        self.where = _describe(settings.redis_url)

    async def admit(self, consumer: str, policies: PolicySet) -> tuple[str, str] | None:
        """Charge one request on the shared store, or apply `on_store_error` while it fails.

        Returns the `RateLimit-Policy` and `RateLimit` fields (None: nothing to announce), or
        raises the 429 (or, with `deny`, the 503)."""
        store = self.redis
        if store is not None and (self.available or self._may_probe()):
            try:
                reply = await store.run(consumer, policies.exact)
            except STORE_ERRORS as exc:
                if self._failed(exc):
                    # Connections from before the outage would each fail once after it:
                    # drop them all now, so Redis's return is clean.
                    await store.reset()
            else:
                self._failures = 0
                if not self.available:
                    self._recovered()
                return store.decide(reply, policies.exact, self._clock())
        return self._fallback(consumer, policies)

    def _may_probe(self) -> bool:
        """While the breaker is open, one request at a time tries Redis again."""
        if self._probing or time.monotonic() < self._retry_at:
            return False
        self._probing = True
        return True

    def _failed(self, exc: BaseException) -> bool:
        """Count a failure; True when it opens the breaker."""
        self._probing = False
        self._failures += 1
        self.store_errors += 1
        if not self.available:
            # A failed probe: the next one after another interval.
            self._retry_at = time.monotonic() + self.retry_interval
            return False
        if self._failures < FAILURES_TO_OPEN:
            return False
        self.available = False
        self._retry_at = time.monotonic() + self.retry_interval
        # The error's type only: its text could hold the URL, password included.
        log.warning(
            "rate-limit store %s unreachable (%s): on_store_error=%s until it answers",
            self.where,
            type(exc).__name__,
            self.on_store_error,
        )
        return True

    def _recovered(self) -> None:
        self._probing = False
        self.available = True
        log.warning("rate-limit store %s reachable again: counting on it", self.where)

    def _fallback(self, consumer: str, policies: PolicySet) -> tuple[str, str] | None:
        if self.on_store_error == "local":
            return self.local.admit(consumer, policies.local)
        if self.on_store_error == "allow":
            return None
        wait = max(1, math.ceil(self._retry_at - time.monotonic()))
        raise ProblemError(
            503,
            "Rate limits cannot be checked right now; retry later.",
            headers={hdrs.RETRY_AFTER: str(wait)},
            problem_type=REDUCED_CAPACITY,
            title="Temporarily reduced capacity",
            reason="rate_limit_store",
        )


def _describe(url: str) -> str:
    """host:port/db of a Redis URL, never its password."""
    rest = url.partition("://")[2]
    return rest.rpartition("@")[2] or url.partition("://")[0]


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The client is made here, in the worker (after gunicorn forks), never in the master."""
    # Imported only for store: redis: redis-py loads the OpenTelemetry API whenever it is
    # installed, which a gateway without a Redis store (or an OTLP endpoint) must not pay for.
    from apigw.ratelimit.redis_store import RedisStore, make_client

    settings = app[SETTINGS_KEY].rate_limits
    client = make_client(settings)
    app[RATE_LIMITER_KEY].redis = RedisStore(client, settings.key_prefix)
    yield
    await client.aclose()


def setup_rate_limits(app: web.Application) -> RateLimiter:
    """After setup_observability: a Redis store's state is a gauge of /metrics (429s are
    counted there as rejections with reason rate_limited)."""
    settings = app[SETTINGS_KEY].rate_limits
    limiter = RateLimiter(settings)
    app[RATE_LIMITER_KEY] = limiter
    if settings.store == "redis":
        app.cleanup_ctx.append(redis_ctx)
        app[OBSERVER_KEY].metrics.add_gauge(
            "gateway_ratelimit_store_up",
            "1 while every worker counts on the rate-limit store (store: redis); 0 while one "
            "applies on_store_error.",
            lambda: {"": 1.0 if limiter.available else 0.0},
            merge="min",
        )
    return limiter
