"""The three real processes, started through their CLIs on free ports, as a user would."""

from __future__ import annotations

import os
import signal
import sys

import aiohttp
import pytest

from tests.support import DEMO_KEY, KEY, free_port
from tests.support.processes import System, port_open


async def test_classic_examples_through_the_real_processes(system: System) -> None:
    gateway = (await system.start_three()).url
    users, orders = (proc.url for proc in system.procs[:2])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway}/users/1", headers=KEY) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["user_id"] == 1
            assert body["name"]
            assert len(resp.headers["X-Request-ID"]) == 32
        async with http.get(f"{gateway}/orders/1", headers=KEY) as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["order_id"] == 1
            assert body["item"]
        async with http.get(f"{gateway}/users/999999", headers=KEY) as resp:
            assert resp.status == 404  # the backend's status, not a gateway rewrite
        async with http.get(f"{gateway}/users/abc", headers=KEY) as resp:
            assert resp.status == 400
        async with http.get(f"{gateway}/users/1") as resp:
            assert resp.status == 401
        async with http.get(f"{gateway}/docs/") as resp:
            assert resp.status == 200
        # The backends refuse everyone but the gateway, even a client holding a valid key.
        for direct in (f"{users}/users/1", f"{orders}/orders/1"):
            for headers in ({}, KEY, {"x-gateway-secret": DEMO_KEY}):
                async with http.get(direct, headers=headers) as resp:
                    assert resp.status == 403
        secret = {"x-gateway-secret": system.secret}
        async with http.get(f"{users}/users/1", headers=secret) as resp:
            assert resp.status == 200
        # A service's own document needs the secret too.
        for headers in ({}, KEY):
            async with http.get(f"{users}/docs/swagger.json", headers=headers) as resp:
                assert resp.status == 403
        async with http.get(f"{users}/docs/swagger.json", headers=secret) as resp:
            assert resp.status == 200

    for proc in system.procs:
        log = proc.log()
        assert DEMO_KEY not in log, proc.name
        assert system.secret not in log, proc.name


@pytest.mark.parametrize("stop_by", ["ctrl-c", "sigterm-to-run"])
async def test_make_run_starts_all_three_and_a_signal_stops_them(
    system: System, stop_by: str
) -> None:
    ports = {"gateway": free_port(), "users": free_port(), "orders": free_port()}
    argv = [sys.executable, "-m", "apigw.run_all"]
    argv += [f"--{name}-port={port}" for name, port in ports.items()]
    run = system.spawn("run", argv, ports["gateway"])
    await run.printed("Ctrl-C stops all three.")
    async with aiohttp.ClientSession() as http, http.get(f"{run.url}/users/1", headers=KEY) as resp:
        assert resp.status == 200
    if stop_by == "ctrl-c":
        # Ctrl-C reaches the whole foreground process group, as in a terminal.
        os.killpg(run.popen.pid, signal.SIGINT)
    else:
        # A supervisor stops only the process it started: the children must follow.
        run.send(signal.SIGTERM)
    assert await run.exited(20) == 0
    for port in ports.values():
        assert not port_open(port), port
    assert f"{run.url}/docs" in run.log()


async def test_users_and_orders_written_through_the_gateway_survive_a_restart(
    system: System,
) -> None:
    gateway = (await system.start_three()).url
    services = system.procs[:2]
    async with aiohttp.ClientSession(headers=KEY) as http:
        new_user = {"name": "Hedy Lamarr", "email": "hedy@example.com"}
        async with http.post(gateway + "/users", json=new_user) as resp:
            assert resp.status == 201
            user, user_at = await resp.json(), resp.headers["Location"]
        new_order = {"user_id": user["user_id"], "item": "Frequency hopper", "quantity": 2}
        async with http.post(gateway + "/orders", json=new_order) as resp:
            assert resp.status == 201
            order, order_at = await resp.json(), resp.headers["Location"]

        for service in services:
            service.stop()
            service.restart()
            await service.ready()

        async with http.get(gateway + user_at) as resp:
            assert await resp.json() == user
        async with http.get(gateway + order_at) as resp:
            assert await resp.json() == order
        async with http.get(gateway + f"/orders?user_id={user['user_id']}") as resp:
            assert await resp.json() == {"items": [order], "next": None}
        # The samples were seeded when the files were new, not again on the restart.
        async with http.get(gateway + "/users") as resp:
            assert len((await resp.json())["items"]) == 4
