"""Real processes for fault-injection tests: started on free loopback ports, always stopped.

`Procs` starts the gateway (`python gateway.py` or gunicorn), fault backends
(tests/faultbackend.py) and keeps every process it started, so teardown stops them all, on
failure too. `SteadyLoad` sends GETs at a fixed rate and counts what came back.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from apigw.config.consumers import digest_of
from tests.conftest import DEMO_KEY, TEST_SECRET, free_port

ROOT = Path(__file__).resolve().parent.parent
FAULT_BACKEND = ROOT / "tests" / "faultbackend.py"
KEY = {"x-api-key": DEMO_KEY}
WORKER_READY = "serving the gateway"  # logged by each gunicorn worker (apigw.gunicorn_hooks)


class Proc:
    """One child process, its port and its log file."""

    def __init__(
        self, name: str, argv: list[str], port: int, log_path: Path, env: dict[str, str]
    ) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self.argv = argv
        self.env = env
        self.workers = 0  # gunicorn workers that must be serving before ready() returns
        self.popen = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    def running(self) -> bool:
        return self.popen.poll() is None

    async def ready(self, timeout: float = 15.0) -> None:
        """Wait until the port takes connections and every worker serves (or fail)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise AssertionError(f"{self.name} exited early:\n{self.log()}")
            if port_open(self.port) and self.log().count(WORKER_READY) >= self.workers:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} did not open port {self.port}:\n{self.log()}")

    async def exited(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.popen.poll()
            if code is not None:
                return code
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} still running after {timeout}s:\n{self.log()}")

    def restart(self) -> None:
        assert not self.running()
        self.popen = self._spawn()

    def stop(self) -> None:
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def gateway_document(routes: dict[str, list[str]], **extra: Any) -> dict[str, Any]:
    return {
        "routes": [{"prefix": prefix, "upstreams": ups} for prefix, ups in routes.items()],
        "consumers": [{"name": "demo", "key_sha256": digest_of(DEMO_KEY.encode()).hex()}],
        **extra,
    }


class Procs:
    """Every process a test starts; `stop_all` runs in the fixture's teardown."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Proc] = []
        self.env = {**os.environ, "GATEWAY_SECRET": TEST_SECRET, "PYTHONUNBUFFERED": "1"}
        self.env.pop("GATEWAY_CONFIG", None)
        self.config_path = tmp_path / "gateway.yaml"

    def _start(self, name: str, argv: list[str], port: int, env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, port, self.tmp_path / f"{name}.log", env)
        self.started.append(proc)
        return proc

    def backend(self, name: str, *flags: str) -> Proc:
        port = free_port()
        argv = [sys.executable, str(FAULT_BACKEND), "--port", str(port), "--name", name, *flags]
        return self._start(name, argv, port, self.env)

    def write_config(self, document: dict[str, Any]) -> None:
        # Written whole and renamed, as an operator's deploy tool would: never half a file.
        staging = self.config_path.with_suffix(".tmp")
        staging.write_text(yaml.safe_dump(document))
        staging.replace(self.config_path)

    def gateway(self, document: dict[str, Any]) -> Proc:
        self.write_config(document)
        port = free_port()
        argv = [
            sys.executable,
            "gateway.py",
            "--config",
            str(self.config_path),
            "--port",
            str(port),
        ]
        return self._start("gateway", argv, port, self.env)

    def gunicorn(self, document: dict[str, Any], workers: int = 2) -> Proc:
        self.write_config(document)
        port = free_port()
        env = {**self.env, "GATEWAY_CONFIG": str(self.config_path)}
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "gateway:create_app",
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            # Its default socket is shared by every gunicorn of the user.
            "--no-control-socket",
        ]
        proc = self._start("gunicorn", argv, port, env)
        proc.workers = workers
        return proc

    def stop_all(self) -> None:
        # Signalled together, so their shutdowns overlap.
        for proc in self.started:
            if proc.running():
                proc.send(signal.SIGTERM)
        for proc in reversed(self.started):
            proc.stop()


@dataclass
class SteadyLoad:
    """GETs at a fixed rate from `streams` clients until stopped; what came back is counted."""

    url: str
    rate: float = 100.0  # requests per second, all streams together
    streams: int = 4
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    backends: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(i)) for i in range(self.streams)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def until(self, ok: int, timeout: float = 10.0) -> None:
        """Wait until `ok` more requests have succeeded."""
        target = self.ok + ok
        deadline = time.monotonic() + timeout
        while self.ok < target:
            assert time.monotonic() < deadline, f"load stalled: {self.failures[-5:]}"
            await asyncio.sleep(0.02)

    async def _run(self, index: int) -> None:
        interval = self.streams / self.rate
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tick = time.monotonic() + index * interval / self.streams
            while not self._stop.is_set():
                try:
                    async with session.get(self.url, headers=KEY) as resp:
                        body = await resp.read()
                        if resp.status == 200:
                            self.ok += 1
                            self.backends[json.loads(body)["backend"]] += 1
                        else:
                            self.failures.append(f"{resp.status} {body[:200]!r}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failures.append(repr(exc))
                tick += interval
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
