"""gunicorn defaults for the gateway: gunicorn gateway:create_app -c gunicorn.conf.py

Every value can be overridden on the command line (e.g. --workers 4 --bind 0.0.0.0:8000).
Reload the config with `kill -HUP <master pid>`: the master checks it first (a bad one is
logged and the running one kept), forks new workers, and the old ones drain and exit.
"""

from __future__ import annotations

import os

from apigw.gunicorn_hooks import (
    child_exit,
    on_exit,
    on_reload,
    on_starting,
    post_fork,
    post_worker_init,
)

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
# An async worker uses one core fully; more workers than cores only adds switching.
workers = int(os.environ.get("GATEWAY_WORKERS", "0")) or (os.cpu_count() or 1)
# One listening socket per worker (SO_REUSEPORT): the kernel spreads new connections over the
# workers evenly. On one shared socket the first worker to wake takes a whole burst (measured:
# 8 keep-alive connections, all 8 on one worker, the other core idle). The cost: a reload or
# restart resets connections still queued, not yet accepted, on a retiring worker's socket.
# GATEWAY_REUSE_PORT=0 shares one socket instead (README, "Deploying with gunicorn").
reuse_port = os.environ.get("GATEWAY_REUSE_PORT", "1") != "0"
worker_class = "aiohttp.GunicornUVLoopWebWorker"
# graceful_timeout (how long a worker may drain after SIGTERM) is set by on_starting from
# the gateway config: shutdown.drain_delay + shutdown.grace + 2 s.
# Becomes aiohttp's idle keep-alive timeout for client connections.
keepalive = 15
# gunicorn 27's control socket has one default path per user, shared by every instance on the
# host; off unless an operator asks for it with --control-socket.
control_socket_disable = True
# aiohttp's worker ignores --limit-request-* and --worker-connections; limits live in the app.

__all__ = ["child_exit", "on_exit", "on_reload", "on_starting", "post_fork", "post_worker_init"]
