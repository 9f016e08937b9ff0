"""`make run`: both services and the gateway, started together and stopped together on Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = (
    ("users", "users_service.py"),
    ("orders", "order_service.py"),
    ("gateway", "gateway.py"),
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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run both services and the gateway.")
    parser.add_argument("--gateway-port", type=int, default=8000)
    parser.add_argument("--users-port", type=int, default=8001)
    parser.add_argument("--orders-port", type=int, default=8002)
    args = parser.parse_args(argv)
    # Ctrl-C, and a SIGTERM from whatever supervises `make run`, stop all three. Set
    # explicitly: a shell starting this in the background would leave SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    ports = {"users": args.users_port, "orders": args.orders_port, "gateway": args.gateway_port}
    env = dict(os.environ)
    env.setdefault("USERS_SERVICE_URL", f"http://127.0.0.1:{ports['users']}")
    env.setdefault("ORDERS_SERVICE_URL", f"http://127.0.0.1:{ports['orders']}")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, script in SERVICES:
            port = ports[name]
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / script), "--port", str(port)], cwd=ROOT, env=env
            )
            procs.append(proc)
            if not wait_for_port(port, proc):
                sys.stderr.write(f"run: {name} did not start on port {port}\n")
                return 1
        gw = f"http://127.0.0.1:{ports['gateway']}"
        print(
            "\nReady:\n"
            f"  gateway  {gw}  (Swagger UI: {gw}/docs)\n"
            f"  users    http://127.0.0.1:{ports['users']}  (answers only the gateway)\n"
            f"  orders   http://127.0.0.1:{ports['orders']}  (answers only the gateway)\n\n"
            f"  curl -H 'x-api-key: secret002oUdaRJA' {gw}/users/1\n\n"
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
