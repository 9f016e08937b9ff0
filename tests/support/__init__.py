"""What the tests share: credentials, constants, and one helper of each kind.

apps        settings and documents for the real apps, started in-process
upstream    the one recording fake upstream (in-process, or as a process)
wire        the one raw-socket client, for requests no client library would send
processes   `Proc` and `System`: real processes (services, gateway, gunicorn, fake upstreams)
load        `SteadyLoad`: GETs at a fixed rate, counted
wait        `eventually()`: the one way to wait for something to happen
hostile     the hostile-input suite's gateway with small limits
ws_backend  the WebSocket and stream backend process (frame echo, floods, SSE)
ws_client   the raw WebSocket client, for frames exactly as told
invariants  what must hold for any path or header set (hypothesis and atheris)
"""

from __future__ import annotations

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

DEMO_KEY = "secret002oUdaRJA"  # the README's demo key, accepted by the shipped gateway.yaml
OTHER_KEY = "gw_other-consumer-key-0123456789"
TEST_SECRET = "test-gateway-secret-0123456789"

KEY = {"x-api-key": DEMO_KEY}
SECRET_HEADERS = {"x-gateway-secret": TEST_SECRET}
PROBLEM = "application/problem+json"
MiB = 1 << 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
