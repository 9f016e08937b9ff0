"""Start the project's real processes on free ports, wait until they listen, always stop them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    def __init__(
        self, name: str, args: Sequence[str], port: int, env: dict[str, str], log_dir: Path
    ) -> None:
        self.name, self.port = name, port
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not listen on {self.port}:\n{self.log()}")

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.popen.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} never printed {text!r}:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        # Children the leader left behind (it may have exited first) must not outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._log.close()
        return self.popen.returncode


def python_script(script: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / script), *args]


# --- The three processes as one system, for tests that restart some of them -----------------

GATEWAY_CONFIG = ROOT / "gateway.yaml"
SCRIPTS = {"users": "users_service.py", "orders": "order_service.py", "gateway": "gateway.py"}


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


class System:
    """Users, orders and the gateway (shipped gateway.yaml) on free ports and temp databases.

    `start()` and `stop()` take process names, so a test can restart some of them.
    """

    def __init__(self, workdir: Path, secret: str) -> None:
        self.workdir = workdir
        self.ports = {name: free_port() for name in SCRIPTS}
        self.procs: dict[str, Proc] = {}
        self.starts = dict.fromkeys(SCRIPTS, 0)
        self.env = {
            "GATEWAY_CONFIG": str(GATEWAY_CONFIG),
            "GATEWAY_PRODUCTION": "0",
            "GATEWAY_SECRET": secret,
            "USERS_DB": str(workdir / "users.db"),
            "ORDERS_DB": str(workdir / "orders.db"),
            "USERS_SERVICE_URL": self.url("users"),
            "ORDERS_SERVICE_URL": self.url("orders"),
        }

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    @property
    def gateway(self) -> str:
        return self.url("gateway")

    def start(self, *names: str) -> None:
        for name in names or tuple(SCRIPTS):
            assert name not in self.procs, f"{name} is already running"
            args = python_script(SCRIPTS[name], "--port", str(self.ports[name]))
            # A log per start: a restarted process does not overwrite the first one's log.
            self.starts[name] += 1
            log_dir = self.workdir / f"{name}-{self.starts[name]}"
            log_dir.mkdir()
            self.procs[name] = Proc(name, args, self.ports[name], self.env, log_dir)
            self.procs[name].wait_listening()

    def stop(self, *names: str) -> None:
        for name in names or tuple(reversed(self.procs)):
            proc = self.procs.pop(name, None)
            if proc is not None:
                proc.stop()

    def wait_for_docs(self, paths: set[str], timeout: float = 30.0) -> dict[str, Any]:
        """The gateway's merged document, once it lists `paths`."""
        deadline = time.monotonic() + timeout
        while True:
            spec: dict[str, Any] = call("GET", self.gateway + "/docs/swagger.json").body
            if paths <= set(spec["paths"]):
                return spec
            if time.monotonic() > deadline:
                raise AssertionError(f"/docs never listed {sorted(paths)}")
            time.sleep(0.05)
