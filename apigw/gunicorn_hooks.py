"""gunicorn server hooks for the gateway (gunicorn.conf.py wires them in).

The master parses the config at start and again on every SIGHUP, before it forks the new
workers; a bad config is one log line and the new workers get the last good one, so a reload
can never stop the gateway. Each worker drains on SIGTERM the way `python gateway.py` does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from apigw.config import ConfigError, GatewaySettings, load_gateway_settings
from apigw.lifecycle import install_signal_handlers
from apigw.observability.metrics_share import (
    make_shared_dir,
    record_reload,
    remove_shared_dir,
    retire_worker,
)
from apigw.shared.appkeys import OBSERVER_KEY
from apigw.shared.cli import finish_requests, setup_logging
from apigw.shared.heap import freeze_heap
from apigw.shared.logs import install_redaction

# Where the master keeps the last config that passed its checks, on its own objects.
_SETTINGS_ATTR = "apigw_settings"
# ... and the directory its workers share their metrics in (apigw/metrics_share.py).
_METRICS_ATTR = "apigw_metrics_dir"


def on_starting(server: Any) -> None:
    """Master, once: a bad config is one line and exit status 2, not a crash per worker."""
    try:
        settings = load_gateway_settings()
    except ConfigError as exc:
        sys.stderr.write(f"gateway: config error: {exc}\n")
        sys.exit(2)
    _accept(server, settings)
    setattr(server, _METRICS_ATTR, make_shared_dir())


def on_reload(server: Any) -> None:
    """Master, on SIGHUP, before the new workers are forked."""
    try:
        settings = load_gateway_settings()
    except ConfigError as exc:
        server.log.error("config reload failed, keeping the running config: %s", exc)
        settings = getattr(server, _SETTINGS_ATTR)
        record_reload(getattr(server, _METRICS_ATTR), ok=False)
    else:
        record_reload(getattr(server, _METRICS_ATTR), ok=True)
    _accept(server, settings)


def _accept(server: Any, settings: GatewaySettings) -> None:
    # Workers count local rate limits alone; with divide_by_workers each takes its share.
    limits = dataclasses.replace(settings.rate_limits, workers=max(1, int(server.cfg.workers)))
    settings = dataclasses.replace(settings, rate_limits=limits)
    setattr(server, _SETTINGS_ATTR, settings)
    # The master kills a worker this long after SIGTERM: room for the drain delay, the grace
    # period, and the worker loop's one-second tick.
    shutdown = settings.shutdown
    server.cfg.set("graceful_timeout", math.ceil(shutdown.drain_delay + shutdown.grace + 2))


def post_fork(server: Any, worker: Any) -> None:
    """Worker, just forked: it serves the settings the master checked."""
    # A SIGTERM that comes while the worker boots would be lost (first the master's inherited
    # handler takes it, then uvloop drops signals that arrive before its loop runs), and the
    # worker would never stop. Held pending until the drain handler is in place instead; first
    # thing, so the window since the fork is as short as gunicorn allows.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    settings: GatewaySettings = getattr(server, _SETTINGS_ATTR)
    setattr(worker, _SETTINGS_ATTR, settings)
    setattr(worker, _METRICS_ATTR, getattr(server, _METRICS_ATTR))
    # gunicorn configures only its own loggers: without this, the gateway's log lines would
    # reach Python's last-resort handler unformatted, and unredacted.
    setup_logging()
    install_redaction([settings.gateway_secret])


def post_worker_init(worker: Any) -> None:
    """Worker, factory imported: give it the settings and the drain-on-SIGTERM handler."""
    settings: GatewaySettings = getattr(worker, _SETTINGS_ATTR)
    factory: Callable[[GatewaySettings], Awaitable[web.Application]] = worker.wsgi

    tasks: list[asyncio.Task[None]] = []
    runners: list[web.AppRunner] = []

    def stop() -> None:
        if tasks:
            return
        loop = asyncio.get_running_loop()
        # The master takes a worker silent for `timeout` as hung; draining is not hung.
        tasks.append(loop.create_task(_heartbeat(worker)))
        tasks.append(loop.create_task(finish_then_exit()))

    async def finish_then_exit() -> None:
        # The listener closes and requests under way finish first (see finish_requests);
        # then gunicorn's own SIGTERM path ends the worker loop and cleans the runner up.
        await finish_requests(runners[0], settings.shutdown.grace)
        worker.handle_exit(signal.SIGTERM, None)

    async def on_startup(app: web.Application) -> None:
        install_signal_handlers(app, stop, drain_signals=(signal.SIGTERM,))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        # The last startup hook: the app is built, the worker about to serve.
        freeze_heap()
        worker.log.info("Worker %s serving the gateway", worker.pid)

    async def on_cleanup(app: web.Application) -> None:
        for task in tasks:
            task.cancel()

    async def app_factory() -> web.AppRunner:
        app = await factory(settings)
        # One scrape of any worker answers for all of them.
        app[OBSERVER_KEY].share(getattr(worker, _METRICS_ATTR))
        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        # The worker serves a runner it is given as it is; this one is ours to drain.
        runner = web.AppRunner(
            app,
            logger=worker.log,
            keepalive_timeout=worker.cfg.keepalive,
            access_log=worker.log.access_log if worker.cfg.accesslog else None,
            shutdown_timeout=worker.cfg.graceful_timeout / 100 * 95,
        )
        runners.append(runner)
        return runner

    worker.wsgi = app_factory


def child_exit(server: Any, worker: Any) -> None:
    """Master, a worker is gone (exited or killed): its counters stay, its gauges go."""
    retire_worker(getattr(server, _METRICS_ATTR), worker.pid)


def on_exit(server: Any) -> None:
    """Master, stopping: the workers' metrics go with it."""
    directory = getattr(server, _METRICS_ATTR, None)
    if directory is not None:
        remove_shared_dir(directory)


async def _heartbeat(worker: Any) -> None:
    while True:
        worker.notify()
        await asyncio.sleep(1.0)
