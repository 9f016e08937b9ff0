"""The gateway under gunicorn's aiohttp worker, with 2 workers, as deployed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.support import DEMO_KEY, KEY, ROOT, free_port
from tests.support.processes import System


async def test_three_processes_with_the_gateway_under_gunicorn_with_two_workers(
    system: System,
) -> None:
    gunicorn = await system.start_three(workers=2)
    async with aiohttp.ClientSession() as http:

        async def one(path: str) -> int:
            async with http.get(gunicorn.url + path, headers=KEY) as resp:
                await resp.read()
                return resp.status

        statuses = await asyncio.gather(*(one(path) for path in ["/users/1", "/orders/1"] * 20))
        assert set(statuses) == {200}
        async with http.get(gunicorn.url + "/users/1") as resp:
            assert resp.status == 401
        async with http.get(gunicorn.url + "/docs/") as resp:
            assert resp.status == 200
    pid = gunicorn.popen.pid
    workers = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    assert len(workers) == 2
    assert gunicorn.stop() == 0
    log = gunicorn.log()
    assert "Traceback" not in log
    # Each worker logs through the gateway's formatted (and redacting) handler, INFO included.
    assert log.count("INFO apigw: HTTP parser: C (llhttp)") == 2
    assert system.secret not in log and DEMO_KEY not in log


def test_gunicorn_refuses_bad_config_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - prefix: /users\n    upstreams: [nope]\n")
    argv = [sys.executable, "-m", "gunicorn", "gateway:create_app", "-c", "gunicorn.conf.py"]
    proc = subprocess.run(
        [*argv, "--bind", f"127.0.0.1:{free_port()}", "--no-control-socket"],
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


def _listening_sockets(pid: int, port: int) -> set[str]:
    """Inodes of the TCP sockets listening on `port` that process `pid` holds."""
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                listening.add(f"socket:[{inode}]")
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue  # closed meanwhile
        if str(target) in listening:
            held.add(str(target))
    return held


async def test_each_gunicorn_worker_listens_on_a_socket_of_its_own(system: System) -> None:
    # With one shared socket, whichever worker wakes first takes a burst of connections;
    # one socket per worker (SO_REUSEPORT) lets the kernel spread them over all workers.
    gunicorn = system.gateway(workers=2)
    await gunicorn.ready()
    pid = gunicorn.popen.pid
    workers = [int(w) for w in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    assert len(workers) == 2
    sockets = [_listening_sockets(worker, gunicorn.port) for worker in workers]
    assert all(len(held) == 1 for held in sockets), sockets
    assert sockets[0] != sockets[1]
    assert gunicorn.stop() == 0
