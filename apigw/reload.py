"""Config reload (SIGHUP): the new config is parsed and checked first, then swapped in whole.

New requests see the new routes, keys and upstream pools; requests under way finish on the
generation they started with. A bad config changes nothing and logs one line.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiohttp import web

from apigw.config import ConfigError, GatewaySettings, load_gateway_settings
from apigw.shared.appkeys import (
    HEALTH_CHECKS_KEY,
    KEYRING_KEY,
    OBSERVER_KEY,
    PROXY_KEY,
    RATE_LIMITER_KEY,
    SESSION_KEY,
)
from apigw.shared.heap import refreeze

log = logging.getLogger("apigw.reload")


class Reloader:
    """Reloads the config file the gateway was started from."""

    __slots__ = ("_app", "_lock", "_tasks")

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()

    def schedule(self) -> None:
        """Start a reload from a signal handler; reloads run one after another."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> bool:
        async with self._lock:
            current = self._app[PROXY_KEY].state.settings
            if not current.source:
                log.warning("config reload skipped: the gateway was not started from a file")
                return False
            try:
                settings = await asyncio.to_thread(
                    load_gateway_settings,
                    current.source,
                    os.environ,
                    production=current.production,
                )
            except ConfigError as exc:
                log.error("config reload failed, keeping the running config: %s", exc)
                self._app[OBSERVER_KEY].reloaded(False)
                return False
            self.apply(settings)
            refreeze()
            return True

    def apply(self, settings: GatewaySettings) -> None:
        """Swap everything a request reads in one step, with no await in between."""
        app = self._app
        current = app[PROXY_KEY].state.settings
        state = app[PROXY_KEY].swap(settings)
        app[KEYRING_KEY].replace(settings.consumers)
        # Counters follow consumer names, so they survive the reload (and a changed plan
        # applies to them at once); only those of consumers and routes now gone are dropped.
        app[RATE_LIMITER_KEY].local.forget_all_but(
            {c.name for c in settings.consumers} | {r.prefix for r in settings.routes}
        )
        app[HEALTH_CHECKS_KEY].restart(app[SESSION_KEY], state)
        app[OBSERVER_KEY].reloaded(True)
        log.info(
            "config reloaded from %s: %d routes, %d consumers",
            settings.source,
            len(settings.routes),
            len(settings.consumers),
        )
        fixed = [
            name
            for name in (
                "pool",
                "limits",
                "shutdown",
                "access_log",
                "metrics",
                "tracing",
                "rate_limits",
            )
            if getattr(settings, name) != getattr(current, name)
        ]
        if fixed:
            log.warning("config reload: changes to %s take effect on restart", ", ".join(fixed))
