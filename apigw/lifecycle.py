"""Serving the gateway process: drain on SIGTERM, reload on SIGHUP.

SIGTERM (or SIGINT) makes /readyz fail at once; new connections are still taken for
`shutdown.drain_delay` seconds so a load balancer can notice, then the listener closes and
requests and streams under way get `shutdown.grace` seconds to finish. A second signal skips
what is left of the drain delay.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from apigw.appkeys import LIFECYCLE_KEY, RELOADER_KEY
from apigw.cli import ACCESS_LOG_FORMAT, install_uvloop
from apigw.config import Shutdown
from apigw.reload import Reloader

log = logging.getLogger("apigw.lifecycle")


class Lifecycle:
    """Whether this process is draining, and how shutdown goes."""

    __slots__ = ("draining", "shutdown")

    def __init__(self, shutdown: Shutdown) -> None:
        self.shutdown = shutdown
        self.draining = False


def setup_lifecycle(app: web.Application, shutdown: Shutdown) -> None:
    app[LIFECYCLE_KEY] = Lifecycle(shutdown)
    app[RELOADER_KEY] = Reloader(app)


def install_signal_handlers(
    app: web.Application,
    stop: Callable[[], object],
    drain_signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Drain on `drain_signals` and then call `stop` (which closes the listener and lets
    in-flight requests finish); reload the config on SIGHUP."""
    loop = asyncio.get_running_loop()
    lifecycle = app[LIFECYCLE_KEY]

    def drain() -> None:
        if lifecycle.draining:
            stop()
            return
        lifecycle.draining = True
        delay = lifecycle.shutdown.drain_delay
        log.info("draining: /readyz fails from now; new connections stop in %gs", delay)
        loop.call_later(delay, stop)

    for sig in drain_signals:
        loop.add_signal_handler(sig, drain)
    loop.add_signal_handler(signal.SIGHUP, app[RELOADER_KEY].schedule)


def serve_gateway(
    app_factory: Callable[[], Awaitable[web.Application]],
    host: str,
    port: int,
    *,
    access_log: bool = False,
    **server_kwargs: Any,
) -> None:
    """`python gateway.py`: serve until SIGTERM or SIGINT, then drain and exit."""
    install_uvloop()
    asyncio.run(_serve(app_factory, host, port, access_log=access_log, **server_kwargs))


async def _serve(
    app_factory: Callable[[], Awaitable[web.Application]],
    host: str,
    port: int,
    *,
    access_log: bool,
    **server_kwargs: Any,
) -> None:
    app = await app_factory()
    grace = app[LIFECYCLE_KEY].shutdown.grace
    server_kwargs.setdefault("keepalive_timeout", 75.0)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        access_log_format=ACCESS_LOG_FORMAT,
        # How long runner.cleanup() waits for requests under way once the listener is closed.
        shutdown_timeout=grace,
        **server_kwargs,
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("Running on http://%s:%d", host, port)
        stopping = asyncio.Event()
        install_signal_handlers(app, stopping.set)
        await stopping.wait()
        log.info("listener closing; requests under way get up to %gs", grace)
    finally:
        await runner.cleanup()
    log.info("stopped")
