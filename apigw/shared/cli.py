"""Shared command-line plumbing: `--host/--port` parsing, logging set-up, and serving an app
until a signal, then draining it (the gateway and both services serve the same way)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from apigw.shared.heap import freeze_heap

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs rid=%{X-Request-ID}o'

log = logging.getLogger("apigw")


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)


def make_parser(prog: str, description: str, default_port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=default_port, help=f"port to listen on ({default_port})"
    )
    return parser


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in requirements.txt
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def stop_on_signals(app: web.Application, stop: Callable[[], object]) -> None:
    """The services' drain: SIGTERM or SIGINT closes the listener at once (`stop`), and
    requests under way get the grace period `serve` was given."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


def serve(
    app_factory: Callable[[], Awaitable[web.Application]],
    host: str,
    port: int,
    *,
    grace: float,
    install_signals: Callable[[web.Application, Callable[[], object]], None] = stop_on_signals,
    access_log: bool = False,
    **server_kwargs: Any,
) -> None:
    """`python X.py` for the gateway and the services alike: serve until `install_signals`
    calls its `stop`, then close the listener and give requests under way `grace` seconds."""
    install_uvloop()
    asyncio.run(_serve(app_factory, host, port, grace, install_signals, access_log, server_kwargs))


async def _serve(
    app_factory: Callable[[], Awaitable[web.Application]],
    host: str,
    port: int,
    grace: float,
    install_signals: Callable[[web.Application, Callable[[], object]], None],
    access_log: bool,
    server_kwargs: dict[str, Any],
) -> None:
    app = await app_factory()
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
        freeze_heap()
        log.info("Running on http://%s:%d", host, port)
        stopping = asyncio.Event()
        install_signals(app, stopping.set)
        await stopping.wait()
        log.info("listener closing; requests under way get up to %gs", grace)
        await finish_requests(runner, grace)
    finally:
        await runner.cleanup()
    log.info("stopped")


async def finish_requests(runner: web.BaseRunner, grace: float) -> None:
    """Close the listener, then let requests under way finish, for up to `grace` seconds.

    `runner.cleanup()` alone would starve an upload under way: its first step closes every
    connection, and aiohttp's server drops the bytes a closed connection still receives
    (`RequestHandler.data_received`), so the handler would wait for its body until the grace
    ran out. Idle keep-alive connections are closed at once, as cleanup would.
    """
    for site in list(runner.sites):
        await site.stop()
    server = runner.server
    if server is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while True:
        busy = False
        for connection in server.connections:
            # A private flag, pinned by tests/system/test_service_processes.py.
            if connection._request_in_progress:
                busy = True
            else:
                connection.close()
        if not busy or loop.time() >= deadline:
            return
        # Shutdown only: a short poll keeps the request path free of any bookkeeping for it.
        await asyncio.sleep(0.05)


def fail(prog: str, message: str) -> int:
    """Print one line, no traceback, and return the exit status for a bad configuration."""
    sys.stderr.write(f"{prog}: {message}\n")
    return 2
