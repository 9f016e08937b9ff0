"""`make run`: both services and the gateway, started together and stopped together on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = (
    ("users", "users_service.py", 8001),
    ("orders", "order_service.py", 8002),
    ("gateway", "gateway.py", 8000),
)


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> int:
    procs: list[subprocess.Popen[bytes]] = []
    env = dict(os.environ)
    try:
        for name, script, port in SERVICES:
            proc = subprocess.Popen([sys.executable, str(ROOT / script)], cwd=ROOT, env=env)
            procs.append(proc)
            if not wait_for_port(port, proc):
                sys.stderr.write(f"run: {name} did not start on port {port}\n")
                return 1
        print(
            "\nReady:\n"
            "  gateway  http://127.0.0.1:8000  (Swagger UI: http://127.0.0.1:8000/docs)\n"
            "  users    http://127.0.0.1:8001  (answers only the gateway)\n"
            "  orders   http://127.0.0.1:8002  (answers only the gateway)\n\n"
            "  curl -H 'x-api-key: secret002oUdaRJA' http://127.0.0.1:8000/users/1\n\n"
            "Ctrl-C stops all three.",
            flush=True,
        )
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        sys.stderr.write("run: a process exited; stopping the others\n")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop(procs)


if __name__ == "__main__":
    sys.exit(main())
