"""The gateway under gunicorn's aiohttp worker, with 2 workers, as deployed."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import DEMO_KEY, free_port
from tests.procs import ROOT, Proc, python_script


def gunicorn_args(port: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "gateway:create_app",
        "-c",
        str(ROOT / "gunicorn.conf.py"),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        *extra,
    ]


async def test_three_processes_with_the_gateway_under_gunicorn_with_two_workers(
    tmp_path: Path,
) -> None:
    secret = "gunicorn-" + secrets.token_urlsafe(24)
    users_port, orders_port, gateway_port = free_port(), free_port(), free_port()
    env = {
        "GATEWAY_SECRET": secret,
        "USERS_SERVICE_URL": f"http://127.0.0.1:{users_port}",
        "ORDERS_SERVICE_URL": f"http://127.0.0.1:{orders_port}",
        "USERS_DB": str(tmp_path / "u.db"),
        "ORDERS_DB": str(tmp_path / "o.db"),
    }
    services = [
        Proc(name, python_script(script, "--port", str(port)), port, env, tmp_path)
        for name, script, port in (
            ("users", "users_service.py", users_port),
            ("orders", "order_service.py", orders_port),
        )
    ]
    gunicorn = Proc("gunicorn", gunicorn_args(gateway_port), gateway_port, env, tmp_path)
    try:
        for service in services:
            service.wait_listening()
        gunicorn.wait_listening()
        async with aiohttp.ClientSession() as http:

            async def one(path: str) -> int:
                async with http.get(
                    f"http://127.0.0.1:{gateway_port}{path}", headers={"x-api-key": DEMO_KEY}
                ) as resp:
                    await resp.read()
                    return resp.status

            paths = ["/users/1", "/orders/1"] * 20
            statuses = await asyncio.gather(*(one(path) for path in paths))
            assert set(statuses) == {200}
            async with http.get(f"http://127.0.0.1:{gateway_port}/users/1") as resp:
                assert resp.status == 401
            async with http.get(f"http://127.0.0.1:{gateway_port}/docs/") as resp:
                assert resp.status == 200
        pid = gunicorn.popen.pid
        workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(workers) == 2
    finally:
        gunicorn_status = gunicorn.stop()
        for service in services:
            service.stop()
    assert gunicorn_status == 0
    log = gunicorn.log()
    assert "Traceback" not in log
    # Each worker logs through the gateway's formatted (and redacting) handler, INFO included.
    assert log.count("INFO apigw: HTTP parser: C (llhttp)") == 2
    assert secret not in log and DEMO_KEY not in log


def test_gunicorn_refuses_bad_config_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - prefix: /users\n    upstreams: [nope]\n")
    proc = subprocess.run(
        gunicorn_args(free_port()),
        cwd=ROOT,
        env={"GATEWAY_CONFIG": str(bad), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if "config error" in line]
    assert lines == [
        "gateway: config error: routes[0].upstreams[0]: expected an http:// or https:// URL "
        "with a host, got 'nope'"
    ]
    assert "Traceback" not in proc.stderr
