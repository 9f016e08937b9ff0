"""Fault injection with real processes: the gateway as a user runs it, misbehaving backends.

Every test starts its own processes on free loopback ports and stops them in teardown.
The figures the notes quote are asserted here: zero failed GETs while a backend restarts or
the config reloads, and a 200 MiB download that survives SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.faultprocs import KEY, Procs, SteadyLoad, gateway_document, port_open

MiB = 1 << 20
# Short drains keep the tests quick; the behaviour is the same at the defaults.
FAST_SHUTDOWN = {"drain_delay": 0.3, "grace": 20}


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    started = Procs(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


async def ready(*procs: Any) -> None:
    await asyncio.gather(*(p.ready() for p in procs))


async def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def stats(session: aiohttp.ClientSession, backend: Any) -> dict[str, int]:
    async with session.get(backend.url + "/_fault/stats") as resp:
        result: dict[str, int] = await resp.json()
        return result


async def test_restarting_one_of_two_backends_fails_no_get(procs: Procs) -> None:
    a, b = procs.backend("a"), procs.backend("b")
    gateway = procs.gateway(
        gateway_document(
            {"/users": [a.url, b.url]}, health={"eject_seconds": 0.5}, shutdown=FAST_SHUTDOWN
        )
    )
    await ready(a, b, gateway)
    load = SteadyLoad(gateway.url + "/users/1", rate=200)
    load.start()
    try:
        await load.until(100)
        a.send(signal.SIGTERM)
        await a.exited(10)
        await load.until(100)
        a.restart()
        await a.ready()
        served_before = load.backends["a"]
        await wait_for(lambda: load.backends["a"] > served_before + 20, 10, "a back in rotation")
    finally:
        await load.stop()
    print(f"\nrestart: {load.ok} GETs, {len(load.failures)} failed, per backend {load.backends}")
    assert load.failures == []


async def test_backend_killed_under_load_fails_no_get(procs: Procs) -> None:
    a, b = procs.backend("a"), procs.backend("b")
    gateway = procs.gateway(gateway_document({"/users": [a.url, b.url]}, shutdown=FAST_SHUTDOWN))
    await ready(a, b, gateway)
    load = SteadyLoad(gateway.url + "/users/1", rate=300, streams=8)
    load.start()
    try:
        await load.until(150)
        a.popen.kill()
        await a.exited(5)
        await load.until(150)
    finally:
        await load.stop()
    print(f"\nkill -9: {load.ok} GETs, {len(load.failures)} failed, per backend {load.backends}")
    assert load.failures == []
    assert "ejected" in gateway.log()


async def test_sighup_reload_under_steady_gets_fails_none(procs: Procs) -> None:
    a, b, c = procs.backend("a"), procs.backend("b"), procs.backend("c")
    first = gateway_document({"/users": [a.url, b.url]}, shutdown=FAST_SHUTDOWN)
    second = gateway_document({"/users": [b.url, c.url]}, shutdown=FAST_SHUTDOWN)
    gateway = procs.gateway(first)
    await ready(a, b, c, gateway)
    load = SteadyLoad(gateway.url + "/users/1", rate=200)
    load.start()
    reloads = 0
    try:
        await load.until(50)
        for document, fresh in ((second, "c"), (first, "a"), (second, "c"), (first, "a")):
            procs.write_config(document)
            gateway.send(signal.SIGHUP)
            reloads += 1
            seen = load.backends[fresh]
            await wait_for(lambda f=fresh, n=seen: load.backends[f] > n, 5, f"{fresh} in use")
            await load.until(30)
        # A broken config: the running one stays, one line says why.
        procs.config_path.write_text("routes: [\n")
        gateway.send(signal.SIGHUP)
        await wait_for(lambda: "config reload failed" in gateway.log(), 5, "the error line")
        served_a = load.backends["a"]
        await load.until(50)
        assert load.backends["a"] > served_a
    finally:
        await load.stop()
    print(f"\nSIGHUP x{reloads + 1}: {load.ok} GETs, {len(load.failures)} failed")
    assert load.failures == []
    errors = [line for line in gateway.log().splitlines() if "config reload failed" in line]
    assert len(errors) == 1
    assert "routes" in errors[0] or "line" in errors[0]
    assert gateway.log().count("config reloaded from") == reloads


async def download_through_sigterm(gateway: Any, size: int) -> tuple[int, float]:
    """Start a download, SIGTERM the gateway mid-stream, and read the rest.

    Checks on the way that /readyz fails at once and that the listener closes while the
    download still runs. Returns the bytes received and the seconds they took after SIGTERM.
    """
    async with aiohttp.ClientSession() as session:
        resp = await session.get(f"{gateway.url}/users/big/{size}", headers=KEY)
        assert resp.status == 200
        got = len(await resp.content.readexactly(MiB))
        gateway.send(signal.SIGTERM)
        sent_at = time.monotonic()
        # Readiness fails at once (under gunicorn: once the master has passed the signal on),
        # while new connections are still taken during the drain delay.
        fresh = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=fresh) as probes:
            while True:
                # A refused connection here would mean the listener closed before readiness
                # failed: the load balancer would have had no warning.
                async with probes.get(gateway.url + "/readyz") as probe:
                    if probe.status == 503:
                        break
                assert time.monotonic() - sent_at < 5, "/readyz still passes"
        await wait_for(lambda: not port_open(gateway.port), 5, "the listener to close")
        assert gateway.running()
        while chunk := await resp.content.read(4 * MiB):
            got += len(chunk)
        return got, time.monotonic() - sent_at


async def test_sigterm_lets_a_200_mib_download_finish(procs: Procs) -> None:
    a = procs.backend("a")
    gateway = procs.gateway(gateway_document({"/users": [a.url]}, shutdown=FAST_SHUTDOWN))
    await ready(a, gateway)
    size = 200 * MiB
    got, took = await download_through_sigterm(gateway, size)
    assert got == size
    assert await gateway.exited(10) == 0
    print(f"\nSIGTERM mid-download: {got / MiB:.0f} MiB received, finished {took:.1f}s after")
    assert "listener closing" in gateway.log()


async def upload_through_sigterm(gateway: Any, size: int) -> dict[str, Any]:
    """Start an upload, SIGTERM the gateway once its first MiB is sent, then send the rest
    after the listener has closed; returns what the backend says it received."""
    first_sent, go_on = asyncio.Event(), asyncio.Event()

    async def body() -> Any:
        yield b"u" * MiB
        first_sent.set()
        await go_on.wait()
        for _ in range(size // MiB - 1):
            yield b"u" * MiB

    async with aiohttp.ClientSession() as session:
        upload = asyncio.ensure_future(
            session.post(f"{gateway.url}/users/upload", data=body(), headers=KEY)
        )
        await first_sent.wait()
        # Answered after the upload's head was sent: the gateway has the upload under way.
        async with session.get(gateway.url + "/healthz") as probe:
            assert probe.status == 200
        gateway.send(signal.SIGTERM)
        await wait_for(lambda: not port_open(gateway.port), 10, "the listener to close")
        go_on.set()
        async with await upload as resp:
            assert resp.status == 200
            result: dict[str, Any] = await resp.json()
            return result


@pytest.mark.parametrize("launcher", ["python", "gunicorn"])
async def test_sigterm_lets_an_upload_under_way_finish(procs: Procs, launcher: str) -> None:
    a = procs.backend("a")
    document = gateway_document({"/users": [a.url]}, shutdown=FAST_SHUTDOWN)
    gateway = procs.gateway(document) if launcher == "python" else procs.gunicorn(document)
    await ready(a, gateway)
    size = 8 * MiB  # under the default 10 MiB body limit
    received = await upload_through_sigterm(gateway, size)
    assert received["body_len"] == size
    assert await gateway.exited(15) == 0


async def test_hanging_backend_gives_504_and_gets_are_retried_elsewhere(procs: Procs) -> None:
    hung, b = procs.backend("hung", "--hang"), procs.backend("b")
    document = gateway_document(
        {"/users": [hung.url, b.url], "/orders": [hung.url]},
        timeouts={"read": 0.5},
        shutdown=FAST_SHUTDOWN,
    )
    gateway = procs.gateway(document)
    await ready(hung, b, gateway)
    async with aiohttp.ClientSession(headers=KEY) as session:
        for _ in range(4):
            async with session.get(gateway.url + "/users/1") as resp:
                assert resp.status == 200
                assert (await resp.json())["backend"] == "b"
        started = time.monotonic()
        async with session.post(gateway.url + "/orders/1", data=b"x" * 100) as resp:
            assert resp.status == 504
            assert resp.content_type == "application/problem+json"
        assert time.monotonic() - started >= 0.5


async def test_backend_reset_mid_body_aborts_the_client(procs: Procs) -> None:
    a = procs.backend("a")
    gateway = procs.gateway(gateway_document({"/users": [a.url]}, shutdown=FAST_SHUTDOWN))
    await ready(a, gateway)
    async with aiohttp.ClientSession(headers=KEY) as session:
        async with session.get(gateway.url + "/users/reset-mid-body") as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        async with session.get(gateway.url + "/users/1") as resp:
            assert resp.status == 200


async def test_upload_reset_mid_body_is_502_and_never_resent(procs: Procs) -> None:
    resetter, b = procs.backend("resetter", "--reset-uploads"), procs.backend("b")
    gateway = procs.gateway(
        gateway_document({"/users": [resetter.url, b.url]}, shutdown=FAST_SHUTDOWN)
    )
    await ready(resetter, b, gateway)
    statuses = []
    async with aiohttp.ClientSession(headers=KEY) as session:
        for _ in range(2):
            async with session.post(gateway.url + "/users/1", data=b"u" * MiB) as resp:
                statuses.append(resp.status)
        resets, elsewhere = await stats(session, resetter), await stats(session, b)
    # Round robin sends one upload to each; the reset one is never sent to b as well.
    assert sorted(statuses) == [200, 502]
    assert resets["uploads"] == 1
    assert elsewhere["uploads"] == 1


async def test_backend_closing_idle_keepalive_after_1s_fails_nothing(procs: Procs) -> None:
    a = procs.backend("a", "--keepalive", "1")
    gateway = procs.gateway(gateway_document({"/users": [a.url]}, shutdown=FAST_SHUTDOWN))
    await ready(a, gateway)
    async with aiohttp.ClientSession(headers=KEY) as session:
        for gap in (0.0, 1.2, 0.9, 1.1):
            # The idle gap is the scenario: around the backend's 1 s keep-alive.
            await asyncio.sleep(gap)
            async with session.post(gateway.url + "/users/1", data=b"p" * 1000) as resp:
                assert resp.status == 200
            async with session.get(gateway.url + "/users/1") as resp:
                assert resp.status == 200


async def test_stale_pooled_connection_is_retried_unless_body_bytes_went_out(
    procs: Procs,
) -> None:
    racer, b = procs.backend("racer", "--close-reused"), procs.backend("b")
    gateway = procs.gateway(gateway_document({"/users": [racer.url, b.url]}))
    await ready(racer, b, gateway)
    async with aiohttp.ClientSession(headers=KEY) as session:
        for method in ("GET", "DELETE", "POST", "PATCH", "OPTIONS") * 2:
            async with session.request(method, gateway.url + "/users/1") as resp:
                assert resp.status == 200, f"{method}: {await resp.text()}"
        assert (await stats(session, racer))["closed_reused"] >= 2
        # With a body, the bytes may already be on the dead connection: 502, never resent.
        statuses = []
        for _ in range(6):
            async with session.post(gateway.url + "/users/1", data=b"b" * 1000) as resp:
                statuses.append(resp.status)
        uploads = (await stats(session, racer))["uploads"] + (await stats(session, b))["uploads"]
    assert set(statuses) <= {200, 502}
    assert uploads == statuses.count(200)


async def test_gunicorn_sighup_reload_under_steady_gets_fails_none(procs: Procs) -> None:
    a, b, c = procs.backend("a"), procs.backend("b"), procs.backend("c")
    first = gateway_document({"/users": [a.url, b.url]}, shutdown=FAST_SHUTDOWN)
    master = procs.gunicorn(first)
    await ready(a, b, c, master)
    load = SteadyLoad(master.url + "/users/1", rate=200)
    load.start()
    try:
        await load.until(50)
        procs.write_config(gateway_document({"/users": [c.url]}, shutdown=FAST_SHUTDOWN))
        master.send(signal.SIGHUP)
        await wait_for(lambda: load.backends["c"] > 20, 10, "the new workers on c")
        # Once the old workers are gone, only the new config is in use.
        await wait_for(lambda: master.log().count("Worker exiting") >= 2, 10, "old workers")
        served = load.backends["a"] + load.backends["b"]
        await load.until(30)
        assert load.backends["a"] + load.backends["b"] == served
        procs.config_path.write_text("routes: [\n")
        master.send(signal.SIGHUP)
        await wait_for(lambda: "config reload failed" in master.log(), 10, "the error line")
        await wait_for(lambda: master.log().count("Worker exiting") >= 4, 10, "old workers")
        # The new workers were given the last good config: still c only.
        served = load.backends["a"] + load.backends["b"]
        served_c = load.backends["c"]
        await load.until(50)
        assert load.backends["a"] + load.backends["b"] == served
        assert load.backends["c"] >= served_c + 50
    finally:
        await load.stop()
    print(f"\ngunicorn SIGHUP x2: {load.ok} GETs, {len(load.failures)} failed")
    assert load.failures == []
    assert master.running()
    assert master.log().count("config reload failed") == 1


async def test_gunicorn_sigterm_lets_a_download_finish(procs: Procs) -> None:
    a = procs.backend("a")
    master = procs.gunicorn(gateway_document({"/users": [a.url]}, shutdown=FAST_SHUTDOWN))
    await ready(a, master)
    size = 200 * MiB
    got, took = await download_through_sigterm(master, size)
    assert got == size
    assert await master.exited(15) == 0
    print(f"\ngunicorn SIGTERM mid-download: {got / MiB:.0f} MiB, finished {took:.1f}s after")


async def test_gunicorn_worker_told_to_stop_while_booting_still_stops(procs: Procs) -> None:
    a = procs.backend("a")
    master = procs.gunicorn(gateway_document({"/users": [a.url]}, shutdown=FAST_SHUTDOWN))
    # The master listens before its workers have imported the app: SIGTERM lands mid-boot.
    await wait_for(lambda: port_open(master.port), 15, "the master to listen")
    master.send(signal.SIGTERM)
    # Well under graceful_timeout (23 s here), after which the master would kill a worker
    # that lost the signal.
    assert await master.exited(10) == 0
