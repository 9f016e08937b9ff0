"""The three real processes, started through their CLIs on free ports, as a user would."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import DEMO_KEY, free_port
from tests.procs import Proc, System, call, python_script


@pytest.fixture
def system(tmp_path: Path) -> Iterator[dict[str, object]]:
    secret = "e2e-" + secrets.token_urlsafe(24)
    users_port, orders_port, gateway_port = free_port(), free_port(), free_port()
    env = {
        "GATEWAY_SECRET": secret,
        "USERS_SERVICE_URL": f"http://127.0.0.1:{users_port}",
        "ORDERS_SERVICE_URL": f"http://127.0.0.1:{orders_port}",
        "USERS_DB": str(tmp_path / "users.db"),
        "ORDERS_DB": str(tmp_path / "orders.db"),
    }
    procs = []
    try:
        for name, script, port in (
            ("users", "users_service.py", users_port),
            ("orders", "order_service.py", orders_port),
            ("gateway", "gateway.py", gateway_port),
        ):
            proc = Proc(name, python_script(script, "--port", str(port)), port, env, tmp_path)
            procs.append(proc)
            proc.wait_listening()
        yield {
            "gateway": f"http://127.0.0.1:{gateway_port}",
            "users": f"http://127.0.0.1:{users_port}",
            "orders": f"http://127.0.0.1:{orders_port}",
            "secret": secret,
            "procs": procs,
        }
    finally:
        for proc in reversed(procs):
            proc.stop()


async def test_classic_examples_through_the_real_processes(system: dict[str, object]) -> None:
    gateway, users, orders = system["gateway"], system["users"], system["orders"]
    secret = str(system["secret"])
    key = {"x-api-key": DEMO_KEY}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway}/users/1", headers=key) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["user_id"] == 1
            assert body["name"]
            assert len(resp.headers["X-Request-ID"]) == 32
        async with http.get(f"{gateway}/orders/1", headers=key) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["order_id"] == 1
            assert body["item"]
        async with http.get(f"{gateway}/users/999999", headers=key) as resp:
            assert resp.status == 404  # the backend's status, not a gateway rewrite
        async with http.get(f"{gateway}/users/abc", headers=key) as resp:
            assert resp.status == 400
        async with http.get(f"{gateway}/users/1") as resp:
            assert resp.status == 401
        async with http.get(f"{gateway}/docs/") as resp:
            assert resp.status == 200
        # The backends refuse everyone but the gateway, even a client holding a valid key.
        for direct in (f"{users}/users/1", f"{orders}/orders/1"):
            for headers in ({}, key, {"x-gateway-secret": DEMO_KEY}):
                async with http.get(direct, headers=headers) as resp:
                    assert resp.status == 403
        async with http.get(f"{users}/users/1", headers={"x-gateway-secret": secret}) as resp:
            assert resp.status == 200

    procs = system["procs"]
    assert isinstance(procs, list)
    for proc in procs:
        log = proc.log()
        assert DEMO_KEY not in log, proc.name
        assert secret not in log, proc.name


@pytest.mark.parametrize("stop_by", ["ctrl-c", "sigterm-to-run"])
def test_make_run_starts_all_three_and_a_signal_stops_them(tmp_path: Path, stop_by: str) -> None:
    ports = {"gateway": free_port(), "users": free_port(), "orders": free_port()}
    env = {"USERS_DB": str(tmp_path / "u.db"), "ORDERS_DB": str(tmp_path / "o.db")}
    args = [sys.executable, "-m", "apigw.run_all"]
    args += [f"--{name}-port={port}" for name, port in ports.items()]
    run = Proc("run", args, ports["gateway"], env, tmp_path)
    try:
        run.wait_for_output("Ctrl-C stops all three.")
        with urllib.request.urlopen(
            urllib.request.Request(
                f"http://127.0.0.1:{ports['gateway']}/users/1", headers={"x-api-key": DEMO_KEY}
            ),
            timeout=10,
        ) as resp:
            assert resp.status == 200
        if stop_by == "ctrl-c":
            # Ctrl-C reaches the whole foreground process group, as in a terminal.
            os.killpg(run.popen.pid, signal.SIGINT)
        else:
            # A supervisor stops only the process it started: the children must follow.
            run.popen.send_signal(signal.SIGTERM)
        assert run.popen.wait(timeout=20) == 0
        for port in ports.values():
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", port)) != 0, port
        assert f"http://127.0.0.1:{ports['gateway']}/docs" in run.log()
    finally:
        run.stop()


@pytest.fixture
def three(tmp_path: Path) -> Iterator[System]:
    """The three processes as a `System` that a test can partly restart."""
    system = System(tmp_path, secret="e2e-" + secrets.token_urlsafe(24))
    try:
        yield system
    finally:
        system.stop()


def test_users_and_orders_written_through_the_gateway_survive_a_restart(three: System) -> None:
    three.start()
    key = {"x-api-key": DEMO_KEY}
    gateway = three.gateway
    user = call(
        "POST",
        gateway + "/users",
        json_body={"name": "Hedy Lamarr", "email": "hedy@example.com"},
        headers=key,
    )
    assert user.status == 201
    order = call(
        "POST",
        gateway + "/orders",
        json_body={"user_id": user.body["user_id"], "item": "Frequency hopper", "quantity": 2},
        headers=key,
    )
    assert order.status == 201

    three.stop("users", "orders")
    three.start("users", "orders")

    assert call("GET", gateway + user.headers["Location"], headers=key).body == user.body
    assert call("GET", gateway + order.headers["Location"], headers=key).body == order.body
    mine = call("GET", gateway + f"/orders?user_id={user.body['user_id']}", headers=key)
    assert mine.body == {"items": [order.body], "next": None}
    # The samples were seeded when the files were new, not again on the restart.
    assert len(call("GET", gateway + "/users", headers=key).body["items"]) == 4


def test_a_services_own_document_needs_the_gateway_secret(three: System) -> None:
    three.start("users")
    document = three.url("users") + "/docs/swagger.json"
    assert call("GET", document).status == 403
    assert call("GET", document, headers={"x-api-key": DEMO_KEY}).status == 403
    secret = three.env["GATEWAY_SECRET"]
    assert call("GET", document, headers={"x-gateway-secret": secret}).status == 200
