"""Rate limits with real processes: exact across gateway instances and gunicorn workers sharing
one real redis-server, what happens while that Redis is killed and after it returns, and the
cost on Redis (one command per request)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from apigw.ratelimit.policies import REDUCED_CAPACITY
from tests.support import free_port
from tests.support.processes import Proc, System
from tests.support.upstream import Upstream
from tests.support.wait import eventually
from tests.system.redis_server import RedisServer

KEYS = {"alice": "gw_alice-key-0123456789abcdef", "bob": "gw_bob-key-0123456789abcdef01"}
# Warms every worker up (Redis connections, script loaded) before a measured flood.
WARM_KEY = "gw_carol-key-0123456789abcdef"
# 10 requests a second sustained, 10 at once: in T seconds of flood, 10 + 10 T get through.
LIMIT, BURST = 10, 10


def document(upstream: str, store: str, redis_url: str, on_error: str = "local") -> dict[str, Any]:
    return {
        "routes": [{"prefix": "/users", "upstreams": [upstream]}],
        "plans": {
            "free": {
                "rate": {"limit": LIMIT, "per": "1s", "burst": BURST},
                # Never reached, but counted on every request: two keys per consumer.
                "quotas": [{"name": "daily", "limit": 10**6, "per": "day"}],
            }
        },
        "consumers": [
            {"name": name, "key_sha256": hashlib.sha256(key.encode()).hexdigest(), "plan": "free"}
            for name, key in {**KEYS, "carol": WARM_KEY}.items()
        ],
        "rate_limits": {
            "store": store,
            "redis_url": redis_url,
            "on_store_error": on_error,
            # Probe a dead Redis often, so the test sees it return quickly.
            "retry_interval": 0.2,
            # The default 50 ms is for production; on the 2-core test box, four workers, the
            # load and Redis share the CPUs, and a late answer would fall back to local counts.
            "redis_timeout": 0.5,
        },
        "shutdown": {"drain_delay": 0, "grace": 2},
    }


def gunicorn(system: System, name: str) -> Proc:
    """One gateway instance: gunicorn with 2 workers, on the config the system wrote."""
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "gateway:create_app", "-c", "gunicorn.conf.py"]
    argv += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--no-control-socket"]
    proc = system.spawn(name, argv, port)
    proc.workers = 2
    return proc


@dataclass
class Outcome:
    """What one consumer got during a load: statuses, and when its first and last request
    left the client."""

    statuses: list[int] = field(default_factory=list)
    first: float = 0.0
    last: float = 0.0
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def admitted(self) -> int:
        return self.statuses.count(200)

    def expected(self) -> float:
        return BURST + LIMIT * (self.last - self.first)


async def flood(
    http: aiohttp.ClientSession,
    urls: list[str],
    seconds: float,
    per_consumer: int = 6,
    keep: bool = False,
) -> dict[str, Outcome]:
    """Each consumer sends from `per_consumer` connections at once, far above its limit,
    spread over every URL, for `seconds`."""
    outcomes = {name: Outcome() for name in KEYS}
    deadline = time.monotonic() + seconds

    async def sender(name: str, start: int) -> None:
        outcome = outcomes[name]
        for base in itertools.islice(itertools.cycle(urls), start, None):
            sent = time.monotonic()
            if sent >= deadline:
                return
            if not outcome.first:
                outcome.first = sent
            outcome.last = sent
            async with http.get(base + "/users/1", headers={"x-api-key": KEYS[name]}) as resp:
                body = await resp.read()
                outcome.statuses.append(resp.status)
                if keep:
                    outcome.answers.append((resp.status, dict(resp.headers), body))

    await asyncio.gather(*(sender(name, i) for name in KEYS for i in range(per_consumer)))
    return outcomes


async def warm_up(http: aiohttp.ClientSession, urls: list[str]) -> None:
    """Enough requests at once that every worker serves some: a worker's first requests
    connect to Redis and load the script, which must not eat into a measured flood."""

    async def one(base: str) -> int:
        async with http.get(base + "/users/1", headers={"x-api-key": WARM_KEY}) as resp:
            await resp.read()
            return resp.status

    for _ in range(3):
        statuses = await asyncio.gather(*(one(base) for base in urls for _ in range(16)))
        assert set(statuses) <= {200, 429}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


async def test_redis_store_is_exact_across_two_instances_of_two_gunicorn_workers(
    system: System,
    redis_server: RedisServer,
    echo_upstream: Upstream,
    http: aiohttp.ClientSession,
) -> None:
    system.write_config(document(echo_upstream.url, "redis", redis_server.url))
    procs = [gunicorn(system, f"gunicorn-{i}") for i in range(2)]
    for proc in procs:
        await proc.ready()
    urls = [proc.url for proc in procs]
    await warm_up(http, urls)
    outcomes = await flood(http, urls, seconds=5.0)
    for proc in procs:
        pid = proc.popen.pid
        assert len(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()) == 2
    system.stop()
    for name, outcome in outcomes.items():
        assert set(outcome.statuses) == {200, 429}, name
        # Far above the limit: at least 20 times more requests than admitted.
        assert len(outcome.statuses) > 4 * outcome.expected(), (name, len(outcome.statuses))
        assert abs(outcome.admitted - outcome.expected()) <= 2, (name, outcome.admitted)
    # Every worker counted on the one Redis: none ran on its own counters.
    logs = "".join(proc.log() for proc in procs)
    assert "unreachable" not in logs
    assert "Traceback" not in logs


async def test_local_store_in_one_process_is_exact(
    system: System, echo_upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    proc = system.gateway(document(echo_upstream.url, "local", "redis://127.0.0.1:1/0"))
    await proc.ready()
    await warm_up(http, [proc.url])
    outcomes = await flood(http, [proc.url], seconds=5.0)
    for name, outcome in outcomes.items():
        assert set(outcome.statuses) == {200, 429}, name
        assert abs(outcome.admitted - outcome.expected()) <= 1, (name, outcome.admitted)


@pytest.mark.parametrize("on_error", ["local", "allow", "deny"])
async def test_redis_killed_mid_load_then_restarted(
    system: System,
    redis_server: RedisServer,
    echo_upstream: Upstream,
    http: aiohttp.ClientSession,
    on_error: str,
) -> None:
    proc = system.gateway(document(echo_upstream.url, "redis", redis_server.url, on_error))
    await proc.ready()
    urls = [proc.url]
    await warm_up(http, urls)
    before = await flood(http, urls, seconds=1.5)
    redis_server.kill()
    during = await flood(http, urls, seconds=1.5, keep=True)
    assert await store_up(http, proc) == 0
    redis_server.start()

    async def counting_on_redis_again() -> bool:
        async with http.get(proc.url + "/users/1", headers={"x-api-key": KEYS["bob"]}):
            pass
        return "reachable again" in proc.log()

    await eventually(counting_on_redis_again, "the gateway to count on Redis again", 20.0)
    after = await flood(http, urls, seconds=2.0)
    assert await store_up(http, proc) == 1
    system.stop()
    log = proc.log()
    assert log.count("unreachable") == 1
    assert log.count("reachable again") == 1
    assert "Traceback" not in log
    for name in KEYS:
        for phase in (before, during, after):
            assert 500 not in phase[name].statuses
        assert abs(before[name].admitted - before[name].expected()) <= 2, name
        # Redis came back empty (no persistence): a fresh burst, then the rate, exactly.
        assert abs(after[name].admitted - after[name].expected()) <= 2, name
        outage = during[name]
        if on_error == "local":
            # Counted in the process meanwhile, with the same limits.
            assert abs(outage.admitted - outage.expected()) <= 2, name
            assert set(outage.statuses) == {200, 429}
        elif on_error == "allow":
            assert set(outage.statuses) == {200}
            assert all("RateLimit" not in headers for _, headers, _ in outage.answers)
        else:
            assert set(outage.statuses) == {503}
            _, headers, body = outage.answers[0]
            assert int(headers["Retry-After"]) >= 1
            assert REDUCED_CAPACITY.encode() in body


async def test_one_redis_command_per_request(
    system: System,
    redis_server: RedisServer,
    echo_upstream: Upstream,
    http: aiohttp.ClientSession,
) -> None:
    proc = system.gateway(document(echo_upstream.url, "redis", redis_server.url))
    client = redis.Redis.from_url(redis_server.url)

    async def sequential(count: int) -> list[int]:
        statuses = []
        for i in range(count):
            # Two consumers, each well within its rate.
            key = KEYS["alice"] if i % 2 else KEYS["bob"]
            async with http.get(proc.url + "/users/1", headers={"x-api-key": key}) as resp:
                statuses.append(resp.status)
        return statuses

    try:
        await proc.ready()
        assert set(await sequential(4)) == {200}  # connections made, script loaded
        client.config_resetstat()
        assert set(await sequential(10)) == {200}
        stats: dict[str, Any] = client.info("commandstats")
        # After a SCRIPT FLUSH (or a restart) redis-py loads the script again: still a 200.
        client.script_flush()
        assert await sequential(1) == [200]
    finally:
        system.stop()
        client.close()
    from_gateway = {
        name: entry["calls"]
        for name, entry in stats.items()
        # The test's own CONFIG RESETSTAT and INFO.
        if not name.startswith(("cmdstat_config", "cmdstat_info"))
    }
    # The commands the script runs inside Redis are listed too: GET and SET per key, TIME.
    assert from_gateway.pop("cmdstat_evalsha") == 10
    assert set(from_gateway) <= {"cmdstat_get", "cmdstat_set", "cmdstat_time"}
    # Every key it wrote expires on its own (a rate's key within a second of the last request,
    # so only the quotas' are left to see), and a consumer's keys share one hash tag.
    keys = client_keys(redis_server)
    assert {b"gw:{c:alice}:daily", b"gw:{c:bob}:daily"} <= set(keys)
    assert set(keys) <= {
        b"gw:{c:alice}:daily",
        b"gw:{c:bob}:daily",
        b"gw:{c:alice}:burst",
        b"gw:{c:bob}:burst",
    }
    assert all(0 < ttl <= 86_400_000 for ttl in keys.values())


async def store_up(http: aiohttp.ClientSession, proc: Proc) -> float:
    """gateway_ratelimit_store_up from the gateway's /metrics."""
    async with http.get(proc.url + "/metrics") as resp:
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("gateway_ratelimit_store_up "))
    return float(line.split()[1])


def client_keys(server: RedisServer) -> dict[bytes, int]:
    with redis.Redis.from_url(server.url) as client:
        ttls = {key: client.pttl(key) for key in client.scan_iter()}
    # -2: expired between SCAN and PTTL, which is what a TTL is for.
    return {key: ttl for key, ttl in ttls.items() if ttl != -2}


async def test_divide_by_workers_takes_the_worker_count_from_gunicorn(
    system: System, echo_upstream: Upstream, http: aiohttp.ClientSession
) -> None:
    config = document(echo_upstream.url, "local", "redis://127.0.0.1:1/0")
    config["rate_limits"]["divide_by_workers"] = True
    system.write_config(config)
    proc = gunicorn(system, "gunicorn")
    await proc.ready()
    async with http.get(proc.url + "/users/1", headers={"x-api-key": KEYS["alice"]}) as resp:
        assert resp.status == 200
        policy = resp.headers["RateLimit-Policy"]
    # 10/s with a burst of 10 and a daily quota, over 2 workers: each enforces half.
    assert policy == '"burst";q=5;w=1, "daily";q=500000;w=86400'
