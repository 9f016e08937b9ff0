"""Counting on Redis (`store: redis`): exact across every worker and instance that share it.

One `EVALSHA` of script.lua per request (redis-py loads the script again after `NOSCRIPT`);
the script reads Redis's `TIME`, so instances with skewed clocks agree. A consumer's keys share
the hash tag `{c:<name>}` (one slot on Redis Cluster) and every key expires on its own.
"""

from __future__ import annotations

from importlib.resources import files

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from apigw.config.plans import RateLimitSettings
from apigw.ratelimit.policies import Limits, limit_field, too_many_requests

SCRIPT = files("apigw.ratelimit").joinpath("script.lua").read_text(encoding="utf-8")


def make_client(settings: RateLimitSettings) -> redis.asyncio.Redis:
    """A client with short timeouts and no retries: a slow or absent Redis is a store error at
    once (the breaker takes over), never seconds of waiting per request."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_pool,
        timeout=settings.redis_timeout,  # the wait for a free pooled connection
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        # Pipelined CLIENT SETINFO is pointless here: None disables it.
        driver_info=None,
    )
    # from_pool: closing the client closes its pool too.
    return redis.asyncio.Redis.from_pool(pool)


class RedisStore:
    __slots__ = ("_client", "_prefix", "_script")

    def __init__(self, client: redis.asyncio.Redis, key_prefix: str) -> None:
        self._client = client
        self._prefix = key_prefix
        self._script = client.register_script(SCRIPT)

    async def reset(self) -> None:
        """Close every pooled connection; new ones are made on the next calls."""
        await self._client.connection_pool.disconnect()

    def keys_and_args(self, consumer: str, limits: Limits) -> tuple[list[str], list[str | int]]:
        prefix = self._prefix
        keys = [
            f"{prefix}:{{r:{p.scope}}}:{p.name}"
            if p.scope
            else f"{prefix}:{{c:{consumer}}}:{p.name}"
            for p in limits.policies
        ]
        # The request's cost (1), then what the script is told of each policy.
        return keys, [1, *limits.script_args]

    async def run(self, consumer: str, limits: Limits) -> list[int]:
        """One EVALSHA; raises redis-py's errors when Redis cannot answer."""
        keys, args = self.keys_and_args(consumer, limits)
        reply: list[int] = await self._script(keys=keys, args=args)
        return reply

    @staticmethod
    def decide(reply: list[int], limits: Limits, now: float) -> tuple[str, str]:
        """The script's answer as LocalStore.admit gives it: the two fields, or the 429."""
        violated: list[str] = []
        retry = 0
        best = 0
        for i, name in enumerate(limits.names):
            remaining, wait, hit = reply[3 * i + 1], reply[3 * i + 2], reply[3 * i + 3]
            if hit:
                violated.append(name)
                retry = max(retry, wait)
            if i and (
                remaining < reply[3 * best + 1]
                or (remaining == reply[3 * best + 1] and wait > reply[3 * best + 2])
            ):
                best = i
        field = limit_field(limits.names[best], reply[3 * best + 1], reply[3 * best + 2] / 1000)
        if reply[0] != 1:
            raise too_many_requests(
                violated,
                retry / 1000,
                (limits.policy_field(now), field),
            )
        return limits.policy_field(now), field
