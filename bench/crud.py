"""Figures for the real services: idle RSS, /docs merge time, CRUD through the gateway, and
parallel writers on one SQLite file. Prints a table; asserts nothing about time.

Run: .venv/bin/python bench/crud.py [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import KEY, SECRET_HEADERS, TEST_SECRET
from tests.support.processes import System, docs_listing

# Requests per second, latencies in ms, and the count of each status.
Result = tuple[float, list[float], dict[int, int]]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(
    method: str, url: str, headers: dict[str, str], bodies: Sequence[object] | None, n: int, c: int
) -> Result:
    """n requests, c at a time; returns (req/s, latencies in ms, count per status)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(range(n))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:

        async def worker() -> None:
            for i in queue:
                start = time.perf_counter()
                body = None if bodies is None else bodies[i % len(bodies)]
                async with session.request(method, url, json=body, headers=headers) as resp:
                    await resp.read()
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        elapsed = time.perf_counter() - began
    return n / elapsed, latencies, statuses


def row(name: str, result: Result) -> str:
    rate, lat, statuses = result
    q = statistics.quantiles(lat, n=100)
    return f"{name:<44} {rate:>8.0f} req/s  p50 {q[49]:6.2f} ms  p99 {q[98]:6.2f} ms  {statuses}"


async def measure(n: int, c: int, workdir: Path) -> None:
    system = System(workdir, secret=TEST_SECRET)
    try:
        users, orders = system.service("users"), system.service("orders")
        await users.ready()
        await orders.ready()
        began = time.perf_counter()
        gateway = system.gateway()
        await gateway.ready()
        await docs_listing(gateway, {"/users/{user_id}", "/orders/{order_id}"})
        merged_after = time.perf_counter() - began
        print("idle RSS after start-up (MB):")
        for proc in system.procs:
            print(f"  {proc.name:<8} {rss_mb(proc.popen.pid):6.1f}")
        print(f"gateway spawn -> /docs merged: {merged_after * 1000:.0f} ms (process start-up)")

        gw = gateway.url
        print(f"\n{n} requests, {c} concurrent:")
        print(row("GET /users/1 via gateway", await load("GET", gw + "/users/1", KEY, None, n, c)))
        direct = await load("GET", users.url + "/users/1", SECRET_HEADERS, None, n, c)
        print(row("GET /users/1 direct (secret)", direct))
        bodies = [{"user_id": i % 3 + 1, "item": f"Item {i}"} for i in range(n)]
        print(
            row("POST /orders via gateway", await load("POST", gw + "/orders", KEY, bodies, n, c))
        )
        page = await load("GET", gw + "/orders?limit=20", KEY, None, n, c)
        print(row("GET /orders?limit=20 via gateway", page))

        # A second users service on the same database file: two processes writing at once.
        second = system.service("users")
        await second.ready()

        def people(tag: str) -> list[object]:
            return [{"name": f"P{i}", "email": f"{tag}{i}@example.com"} for i in range(n)]

        one, two = await asyncio.gather(
            load("POST", users.url + "/users", SECRET_HEADERS, people("a"), n, c),
            load("POST", second.url + "/users", SECRET_HEADERS, people("b"), n, c),
        )
        print(row("POST /users, process 1 of 2 on one file", one))
        print(row("POST /users, process 2 of 2 on one file", two))
    finally:
        system.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(measure(args.requests, args.concurrency, Path(tmp)))


if __name__ == "__main__":
    main()
