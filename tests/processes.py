"""The three real processes, started through their CLIs on free ports exactly as a user would.

Each writes its log to a file (a full pipe would stall it); a process that dies or does not
answer /healthz in time fails the test with the end of its log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import TEST_SECRET, free_port

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
# Variables that would point the processes somewhere other than this test's files.
_SCRUBBED = ("GATEWAY_CONFIG", "GATEWAY_PRODUCTION", "USERS_DB", "ORDERS_DB")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def call(
    method: str, url: str, *, json_body: Any = None, headers: dict[str, str] | None = None
) -> Answer:
    """One HTTP request; an error status is an answer, not an exception."""
    data = None if json_body is None else json.dumps(json_body).encode()
    # The tests pass only http:// URLs of their own processes.
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})  # noqa: S310
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status, got, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, got, raw = exc.code, dict(exc.headers), exc.read()
    return Answer(status, got, json.loads(raw) if raw else None)


@dataclass
class Process:
    name: str
    script: str
    port: int
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@dataclass
class System:
    """Users, orders and the gateway with the shipped gateway.yaml, on temp databases."""

    workdir: Path
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, script in (
            ("users", "users_service.py"),
            ("orders", "order_service.py"),
            ("gateway", "gateway.py"),
        ):
            self.processes[name] = Process(name, script, free_port(), self.workdir / f"{name}.log")
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env.update(
            GATEWAY_SECRET=TEST_SECRET,
            USERS_DB=str(self.workdir / "users.db"),
            ORDERS_DB=str(self.workdir / "orders.db"),
            USERS_SERVICE_URL=self["users"].url,
            ORDERS_SERVICE_URL=self["orders"].url,
        )
        self.env = env

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]

    @property
    def gateway(self) -> str:
        return self["gateway"].url

    def start(self, *names: str) -> None:
        names = names or tuple(self.processes)
        for name in names:
            process = self[name]
            assert process.popen is None, f"{name} is already running"
            with process.log.open("ab") as log:
                process.popen = subprocess.Popen(
                    [sys.executable, str(ROOT / process.script), "--port", str(process.port)],
                    cwd=ROOT,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
        for name in names:
            self._wait_ready(self[name])

    def _wait_ready(self, process: Process) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        assert process.popen is not None
        while True:
            if process.popen.poll() is not None:
                raise AssertionError(f"{process.name} exited:\n{process.log_tail()}")
            try:
                if call("GET", process.url + "/healthz").status == 200:
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise AssertionError(f"{process.name} not ready in time:\n{process.log_tail()}")
            time.sleep(0.05)

    def stop(self, *names: str) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it lingers."""
        for name in names or tuple(reversed(self.processes)):
            process = self[name]
            if process.popen is None:
                continue
            if process.popen.poll() is None:
                process.popen.send_signal(signal.SIGTERM)
                try:
                    process.popen.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.popen.kill()
                    process.popen.wait()
            process.popen = None

    def wait_for_docs(self, paths: set[str]) -> dict[str, Any]:
        """The gateway's merged document, once it lists `paths`."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            spec: dict[str, Any] = call("GET", self.gateway + "/docs/swagger.json").body
            if paths <= set(spec["paths"]):
                return spec
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"/docs never listed {sorted(paths)}:\n{self['gateway'].log_tail()}"
                )
            time.sleep(0.05)
