"""Fixtures for the WebSocket and stream tests: a fake backend process and a gateway process
configured per test, both on free ports and always stopped."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apigw.config.consumers import digest_of
from tests.conftest import DEMO_KEY, TEST_SECRET, free_port
from tests.procs import Proc, python_script

KEY = {"x-api-key": DEMO_KEY}


class WsSystem:
    """The fake backend (tests/system/ws_backend.py) and a gateway in front of it."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.backend_port = free_port()
        self.raw_port = free_port()
        self.gateway_port = free_port()
        self.backend: Proc | None = None
        self.gateway: Proc | None = None

    def start_backend(self) -> None:
        args = [
            sys.executable,
            "-m",
            "tests.system.ws_backend",
            "--port",
            str(self.backend_port),
            "--raw-port",
            str(self.raw_port),
        ]
        self.backend = Proc("backend", args, self.backend_port, {}, self.workdir)
        self.backend.wait_listening()

    def start_gateway(self, extra: dict[str, Any] | None = None, **route: Any) -> None:
        """The gateway with routes /ws and /sse to the backend and /raw to the frame echo;
        `route` keys apply to every route, `extra` keys to the top level."""
        backend = f"http://127.0.0.1:{self.backend_port}"
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
        config = self.workdir / "gateway.yaml"
        config.write_text(yaml.safe_dump(document))
        args = python_script(
            "gateway.py", "--config", str(config), "--port", str(self.gateway_port)
        )
        env = {"GATEWAY_SECRET": TEST_SECRET, "GATEWAY_PRODUCTION": "0"}
        self.gateway = Proc("gateway", args, self.gateway_port, env, self.workdir)
        self.gateway.wait_listening()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def report(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.backend_port}/report"
        with urllib.request.urlopen(url, timeout=10) as response:
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

    def stop(self) -> None:
        for proc in (self.gateway, self.backend):
            if proc is not None:
                proc.stop()


@pytest.fixture
def ws_system(tmp_path: Path) -> Iterator[WsSystem]:
    system = WsSystem(tmp_path)
    try:
        system.start_backend()
        yield system
    finally:
        system.stop()


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = 15.0
) -> None:
    """Poll `check` until it holds, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
