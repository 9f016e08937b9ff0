"""Real processes on free loopback ports: started as a user would, always stopped.

`System` starts the two services, the gateway (`python gateway.py` or gunicorn) and fake
upstreams (tests/support/upstream.py), and keeps every process it started, so that
`stop()` in a fixture's teardown stops them all, on failure too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support import ROOT, TEST_SECRET, free_port
from tests.support.wait import eventually

WORKER_READY = "serving the gateway"  # logged by each gunicorn worker (apigw.gunicorn_hooks)
SERVICES = {"users": "users_service.py", "orders": "order_service.py"}


def fresh_interpreter(script: str) -> subprocess.CompletedProcess[str]:
    """`script` run by a new Python in the repository root: what a worker imports at start-up,
    which this test process (having imported everything already) cannot show."""
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Proc:
    """One child process in its own process group, its port and its log file."""

    def __init__(
        self, name: str, argv: list[str], port: int, env: dict[str, str], log_path: Path
    ) -> None:
        self.name, self.argv, self.port, self.env = name, argv, port, env
        self.log_path = log_path
        self.workers = 0  # gunicorn workers that must be serving before ready() returns
        self.popen = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Appended to: a restarted process keeps the first one's lines.
        with self.log_path.open("ab") as log:
            return subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.popen.send_signal(sig)

    def running(self) -> bool:
        return self.popen.poll() is None

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait until the port takes connections and every gunicorn worker serves."""

        def serving() -> bool:
            assert self.running(), f"{self.name} exited early:\n{self.log()}"
            return port_open(self.port) and self.log().count(WORKER_READY) >= self.workers

        await eventually(serving, f"{self.name} to serve on {self.port}", timeout)

    async def printed(self, text: str, timeout: float = 30.0) -> None:
        def found() -> bool:
            assert text in self.log() or self.running(), f"{self.name} exited:\n{self.log()}"
            return text in self.log()

        await eventually(found, f"{self.name} to print {text!r}", timeout)

    async def exited(self, timeout: float) -> int:
        """The exit status, once the process has exited by itself."""
        try:
            await eventually(lambda: self.popen.poll() is not None, "an exit", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{self.name}: {exc}:\n{self.log()}") from None
        code: int = self.popen.returncode
        return code

    def restart(self) -> None:
        assert not self.running()
        self.popen = self._spawn()

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.running():
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        # Children the leader left behind (it may have exited first) must not outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode


class System:
    """Every process a test starts, on free ports, with temp databases and logs in `workdir`."""

    def __init__(self, workdir: Path, secret: str = TEST_SECRET) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.config_path = workdir / "gateway.yaml"
        self.env = {
            **os.environ,
            "GATEWAY_SECRET": secret,
            "GATEWAY_PRODUCTION": "0",
            "PYTHONUNBUFFERED": "1",
            "USERS_DB": str(workdir / "users.db"),
            "ORDERS_DB": str(workdir / "orders.db"),
        }
        self.env.pop("GATEWAY_CONFIG", None)  # the shipped gateway.yaml, unless a test writes one

    @property
    def secret(self) -> str:
        return self.env["GATEWAY_SECRET"]

    def spawn(self, name: str, argv: list[str], port: int, **env: str) -> Proc:
        proc = Proc(name, argv, port, {**self.env, **env}, self.workdir / f"{name}.log")
        self.procs.append(proc)
        return proc

    def service(self, name: str) -> Proc:
        """The users or orders service; the shipped gateway.yaml finds it through the env."""
        port = free_port()
        self.env[f"{name.upper()}_SERVICE_URL"] = f"http://127.0.0.1:{port}"
        argv = [sys.executable, SERVICES[name], "--port", str(port)]
        return self.spawn(name, argv, port)

    def upstream(self, name: str, *flags: str) -> Proc:
        """A fake upstream process (tests/support/upstream.py) that answers with its name."""
        port = free_port()
        argv = [sys.executable, "-m", "tests.support.upstream", "--port", str(port)]
        return self.spawn(name, [*argv, "--name", name, *flags], port)

    def write_config(self, document: dict[str, Any]) -> None:
        # Written whole and renamed, as an operator's deploy tool would: never half a file.
        staging = self.config_path.with_suffix(".tmp")
        staging.write_text(yaml.safe_dump(document))
        staging.replace(self.config_path)
        self.env["GATEWAY_CONFIG"] = str(self.config_path)

    def gateway(self, document: dict[str, Any] | None = None, *, workers: int = 0) -> Proc:
        """`python gateway.py`, or with `workers`, gunicorn's aiohttp worker as deployed;
        with the shipped gateway.yaml unless a `document` is given."""
        if document is not None:
            self.write_config(document)
        port = free_port()
        if not workers:
            return self.spawn("gateway", [sys.executable, "gateway.py", "--port", str(port)], port)
        argv = [sys.executable, "-m", "gunicorn", "gateway:create_app", "-c", "gunicorn.conf.py"]
        argv += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
        # Its default control socket is shared by every gunicorn of the user.
        proc = self.spawn("gunicorn", [*argv, "--no-control-socket"], port)
        proc.workers = workers
        return proc

    async def start_three(self, *, workers: int = 0) -> Proc:
        """Users, orders and the gateway with the shipped gateway.yaml, all serving."""
        started = [self.service("users"), self.service("orders")]
        await ready(*started)
        gateway = self.gateway(workers=workers)
        await gateway.ready()
        return gateway

    def stop(self) -> None:
        # Signalled together, so that their shutdowns overlap.
        for proc in self.procs:
            if proc.running():
                os.killpg(proc.popen.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            proc.stop()


async def ready(*procs: Proc) -> None:
    for proc in procs:
        await proc.ready()


async def docs_listing(gateway: Proc, paths: set[str], timeout: float = 30.0) -> dict[str, Any]:
    """The gateway's merged OpenAPI document, once it lists `paths`."""

    async with aiohttp.ClientSession() as http:

        async def listed() -> dict[str, Any] | None:
            async with http.get(gateway.url + "/docs/swagger.json") as resp:
                spec: dict[str, Any] = await resp.json()
            return spec if paths <= set(spec["paths"]) else None

        return await eventually(listed, f"/docs to list {sorted(paths)}", timeout)
