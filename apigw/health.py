"""Active health checks of upstream targets, and the gateway's own readiness (/readyz).

A route with `health.check_interval` set gets one task that sends `GET <check_path>` (with
the gateway secret) to each of its targets every interval; a target whose check fails takes
no requests until a check passes again. Each worker process checks on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web

from apigw.proxy import ProxyState
from apigw.shared.appkeys import (
    EXCHANGE_KEY,
    HEALTH_CHECKS_KEY,
    LIFECYCLE_KEY,
    PROXY_KEY,
    SESSION_KEY,
)
from apigw.shared.errors import problem_response
from apigw.shared.headers import GATEWAY_SECRET_HEADER
from apigw.shared.reserved import READYZ_PATH
from apigw.upstreams import Target, UpstreamPool

log = logging.getLogger("apigw.health")


class HealthChecks:
    """The check tasks of the current config generation."""

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, session: aiohttp.ClientSession, state: ProxyState) -> None:
        for pool in state.pools:
            if pool.health.check_interval is not None:
                task = asyncio.create_task(_check_loop(session, pool, state.secret))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def restart(self, session: aiohttp.ClientSession, state: ProxyState) -> None:
        """After a reload: the old generation's checks stop, the new one's start."""
        for task in self._tasks:
            task.cancel()
        self.start(session, state)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _check_loop(session: aiohttp.ClientSession, pool: UpstreamPool, secret: str) -> None:
    health = pool.health
    assert health.check_interval is not None
    headers: Mapping[str, str] = {GATEWAY_SECRET_HEADER: secret}
    timeout = aiohttp.ClientTimeout(total=health.check_timeout)
    while True:
        await asyncio.gather(
            *(_check(session, pool, target, headers, timeout) for target in pool.targets)
        )
        await asyncio.sleep(health.check_interval)


async def _check(
    session: aiohttp.ClientSession,
    pool: UpstreamPool,
    target: Target,
    headers: Mapping[str, str],
    client_timeout: aiohttp.ClientTimeout,
) -> None:
    try:
        async with session.get(
            target.base + pool.health.check_path,
            headers=headers,
            timeout=client_timeout,
            allow_redirects=False,
        ) as resp:
            ok = 200 <= resp.status < 300
    except (aiohttp.ClientError, OSError):
        ok = False
    pool.checked(target, ok)


async def readyz(request: web.Request) -> web.Response:
    """Ready: not draining, and every route has a target that can take a request."""
    request_id = request[EXCHANGE_KEY].request_id
    if request.app[LIFECYCLE_KEY].draining:
        return problem_response(503, "The gateway is shutting down.", request_id)
    down = [pool.route.prefix for pool in request.app[PROXY_KEY].state.pools if not pool.ready()]
    if down:
        return problem_response(
            503, "Some routes have no healthy upstream.", request_id, extra={"routes_down": down}
        )
    return web.json_response({"status": "ready"})


async def health_checks_ctx(app: web.Application) -> AsyncIterator[None]:
    checks = app[HEALTH_CHECKS_KEY]
    checks.start(app[SESSION_KEY], app[PROXY_KEY].state)
    yield
    await checks.stop()


def setup_health(app: web.Application) -> None:
    """/readyz and the active checks; after setup_proxy, whose session the checks use."""
    app[HEALTH_CHECKS_KEY] = HealthChecks()
    app.router.add_get(READYZ_PATH, readyz)
    app.cleanup_ctx.append(health_checks_ctx)
