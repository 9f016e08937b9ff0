"""A real redis-server (Debian's) on a free loopback port, owned by one test: started, killed,
restarted on the same port, and always stopped."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support import free_port

REDIS_SERVER = "/usr/bin/redis-server"


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        assert shutil.which(REDIS_SERVER) or Path(REDIS_SERVER).exists(), (
            "redis-server is missing: run scripts/install-system-packages.sh (make test does)"
        )
        self.port = free_port()
        self.workdir = workdir
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        assert self.popen is None, "already running"
        self.starts += 1
        log = (self.workdir / f"redis-{self.port}-{self.starts}.log").open("wb")
        self.popen = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _ping(self.port):
            assert self.popen.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not answer PING"
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: the way a crashed or unreachable Redis looks to its clients."""
        if self.popen is not None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)
            self.popen = None

    def stop(self) -> None:
        self.kill()
