"""The services run like the gateway: a SIGTERM lets requests under way finish before the
process exits, and neither their logs nor their answers ever show the gateway secret."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.procs import Proc, python_script

SECRET = "service-test-secret-0123456789"


@pytest.fixture
def users(tmp_path: Path) -> Iterator[Proc]:
    port = free_port()
    env = {"GATEWAY_SECRET": SECRET, "USERS_DB": str(tmp_path / "users.db")}
    proc = Proc(
        "users", python_script("users_service.py", "--port", str(port)), port, env, tmp_path
    )
    proc.wait_listening()
    yield proc
    proc.stop()


def _read_reply(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_request_under_way_finishes_after_sigterm(users: Proc) -> None:
    body = b'{"name": "Grace Drain", "email": "grace.drain@example.com"}'
    with socket.create_connection(("127.0.0.1", users.port), timeout=10) as sock:
        head = (
            "POST /users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"x-gateway-secret: {SECRET}\r\n\r\n"
        )
        # Half the body: the request is under way, its handler waiting for the rest.
        sock.sendall(head.encode() + body[:10])
        # A request sent after it and answered means the server has taken it in: its head was
        # read first, and its handler started before this one could be answered.
        with socket.create_connection(("127.0.0.1", users.port), timeout=10) as probe:
            probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _read_reply(probe).startswith(b"HTTP/1.1 200 ")
        os.kill(users.popen.pid, signal.SIGTERM)
        users.wait_for_output("listener closing")
        sock.sendall(body[10:])
        try:
            reply = _read_reply(sock)
        except TimeoutError:
            raise AssertionError(users.log()) from None
    assert reply.startswith(b"HTTP/1.1 201 "), users.log()
    assert users.popen.wait(15) == 0


def test_the_gateway_secret_never_reaches_the_service_log_or_its_answers(users: Proc) -> None:
    # aiohttp logs and answers a malformed head quoting the offending line: here the secret.
    with socket.create_connection(("127.0.0.1", users.port), timeout=10) as sock:
        sock.sendall(
            f"GET /users HTTP/1.1\r\nHost: x\r\nx-gateway-secret: {SECRET}\x01\r\n\r\n".encode()
        )
        reply = _read_reply(sock)
    assert reply.startswith((b"HTTP/1.1 400 ", b"HTTP/1.0 400 "))
    assert b"application/problem+json" in reply
    assert SECRET.encode() not in reply
    users.stop()
    log = users.log()
    assert "400 for a malformed request" in log, log
    assert SECRET not in log
