"""Fixtures for tests that start real processes: `make test-fast` leaves this folder out."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apigw.config.consumers import digest_of
from tests.support import DEMO_KEY, free_port
from tests.support.processes import Proc, System


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    """Starts processes on free ports; stops every one of them after the test."""
    started = System(tmp_path)
    try:
        yield started
    finally:
        started.stop()


class WsSystem:
    """The fake WebSocket and stream backend (tests/support/ws_backend.py) and a gateway in
    front of it, with routes /ws and /sse to the backend and /raw to its frame echo."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.raw_port = free_port()
        self.backend: Proc | None = None
        self.gateway: Proc | None = None

    async def start_backend(self) -> None:
        port = free_port()
        argv = [sys.executable, "-m", "tests.support.ws_backend", "--port", str(port)]
        self.backend = self.system.spawn("backend", [*argv, "--raw-port", str(self.raw_port)], port)
        await self.backend.ready()

    async def start_gateway(
        self, extra: dict[str, Any] | None = None, *, workers: int = 0, **route: Any
    ) -> None:
        """`route` keys apply to every route, `extra` keys to the top level; with `workers`,
        under gunicorn."""
        assert self.backend is not None
        backend = self.backend.url
        document = {
            "routes": [
                {"prefix": "/ws", "upstreams": [backend], **route},
                {"prefix": "/sse", "upstreams": [backend], **route},
                {"prefix": "/raw", "upstreams": [f"http://127.0.0.1:{self.raw_port}"], **route},
            ],
            "consumers": [{"name": "demo", "key_sha256": digest_of(DEMO_KEY.encode()).hex()}],
            "shutdown": {"drain_delay": 0.1, "grace": 5},
            **(extra or {}),
        }
        self.gateway = self.system.gateway(document, workers=workers)
        await self.gateway.ready()

    @property
    def url(self) -> str:
        assert self.gateway is not None
        return self.gateway.url

    @property
    def gateway_port(self) -> int:
        assert self.gateway is not None
        return self.gateway.port

    @property
    def workdir(self) -> Path:
        return self.system.workdir

    def report(self) -> dict[str, Any]:
        """What the backend saw (its GET /report, asked directly)."""
        assert self.backend is not None
        with urllib.request.urlopen(self.backend.url + "/report", timeout=10) as response:  # noqa: S310
            result: dict[str, Any] = json.loads(response.read())
        return result

    def gateway_rss(self) -> int:
        """The gateway's resident memory, in bytes."""
        assert self.gateway is not None
        status = Path(f"/proc/{self.gateway.popen.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@pytest.fixture
async def ws_system(system: System) -> WsSystem:
    started = WsSystem(system)
    await started.start_backend()
    return started
