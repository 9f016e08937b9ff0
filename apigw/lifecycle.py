"""The gateway process's signals: drain on SIGTERM, reload on SIGHUP.

SIGTERM (or SIGINT) makes /readyz fail at once; new connections are still taken for
`shutdown.drain_delay` seconds so a load balancer can notice, then the listener closes and
requests and streams under way get `shutdown.grace` seconds to finish. A second signal skips
what is left of the drain delay.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from apigw.config import Shutdown
from apigw.reload import Reloader
from apigw.shared.appkeys import LIFECYCLE_KEY, PROXY_KEY, RELOADER_KEY, REQUEST_GATE_KEY

log = logging.getLogger("apigw.lifecycle")


class Lifecycle:
    """Whether this process is draining, and how shutdown goes."""

    __slots__ = ("draining", "listener_closing", "shutdown")

    def __init__(self, shutdown: Shutdown) -> None:
        self.shutdown = shutdown
        self.draining = False
        # Called once when the listener closes, before requests under way are waited for:
        # what never ends by itself (WebSocket tunnels, streams) is told here (apigw/streams.py).
        self.listener_closing: list[Callable[[], None]] = []

    def close_listener(self) -> None:
        callbacks, self.listener_closing = self.listener_closing, []
        for callback in callbacks:
            callback()


def setup_lifecycle(app: web.Application, shutdown: Shutdown) -> None:
    app[LIFECYCLE_KEY] = Lifecycle(shutdown)
    app[RELOADER_KEY] = Reloader(app)


def begin_drain(app: web.Application) -> None:
    """/readyz fails from now, and every answer closes its connection (Connection: close)."""
    app[LIFECYCLE_KEY].draining = True
    app[REQUEST_GATE_KEY].draining = True
    app[PROXY_KEY].draining = True


def install_signal_handlers(
    app: web.Application,
    stop: Callable[[], object],
    drain_signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Drain on `drain_signals` and then call `stop` (which closes the listener and lets
    in-flight requests finish); reload the config on SIGHUP."""
    loop = asyncio.get_running_loop()
    lifecycle = app[LIFECYCLE_KEY]

    def close_listener() -> None:
        lifecycle.close_listener()
        stop()

    def drain() -> None:
        if lifecycle.draining:
            close_listener()
            return
        begin_drain(app)
        delay = lifecycle.shutdown.drain_delay
        log.info("draining: /readyz fails from now; new connections stop in %gs", delay)
        loop.call_later(delay, close_listener)

    for sig in drain_signals:
        loop.add_signal_handler(sig, drain)
    loop.add_signal_handler(signal.SIGHUP, app[RELOADER_KEY].schedule)
