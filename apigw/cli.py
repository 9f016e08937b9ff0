"""Shared command-line plumbing: `--host/--port` parsing, logging set-up and serving an app."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs rid=%{X-Request-ID}o'


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


def serve(
    app_factory: Callable[[], Awaitable[web.Application]],
    host: str,
    port: int,
    *,
    access_log: bool = False,
    **server_kwargs: Any,
) -> None:
    install_uvloop()
    web.run_app(
        app_factory(),
        host=host,
        port=port,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        access_log_format=ACCESS_LOG_FORMAT,
        print=lambda line: logging.getLogger("apigw").info(line.strip().splitlines()[0]),
        **server_kwargs,
    )


def fail(prog: str, message: str) -> int:
    """Print one line, no traceback, and return the exit status for a bad configuration."""
    sys.stderr.write(f"{prog}: {message}\n")
    return 2
