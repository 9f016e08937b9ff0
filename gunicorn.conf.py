"""gunicorn defaults for the gateway: gunicorn gateway:create_app -c gunicorn.conf.py

Every value can be overridden on the command line (e.g. --workers 4 --bind 0.0.0.0:8000).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from apigw.config import ConfigError, load_gateway_settings

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
# An async worker uses one core fully; more workers than cores only adds switching.
workers = int(os.environ.get("GATEWAY_WORKERS", "0")) or (os.cpu_count() or 1)
worker_class = "aiohttp.GunicornUVLoopWebWorker"
# In-flight requests and streams get this long to finish after SIGTERM.
graceful_timeout = 30
# Becomes aiohttp's idle keep-alive timeout for client connections.
keepalive = 15
# gunicorn 27's control socket has one default path per user, shared by every instance on the
# host; off unless an operator asks for it with --control-socket.
control_socket_disable = True
# aiohttp's worker ignores --limit-request-* and --worker-connections; limits live in the app.


def on_starting(server: Any) -> None:
    """Check the config once in the master, so a bad one is one line, not a crash per worker."""
    try:
        load_gateway_settings()
    except ConfigError as exc:
        sys.stderr.write(f"gateway: config error: {exc}\n")
        sys.exit(2)
