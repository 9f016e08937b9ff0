"""`SteadyLoad`: GETs at a fixed rate through the gateway, and what came back, counted."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from tests.support import KEY
from tests.support.wait import eventually


@dataclass
class SteadyLoad:
    """GETs at a fixed rate from `streams` clients until stopped; what came back is counted."""

    url: str
    rate: float = 100.0  # requests per second, all streams together
    streams: int = 4
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    backends: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(i)) for i in range(self.streams)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def until(self, ok: int, timeout: float = 10.0) -> None:
        """Wait until `ok` more requests have succeeded."""
        target = self.ok + ok

        def reached() -> bool:
            assert not self._stop.is_set()
            return self.ok >= target

        await eventually(reached, f"{ok} more successful GETs", timeout)

    async def _run(self, index: int) -> None:
        interval = self.streams / self.rate
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tick = time.monotonic() + index * interval / self.streams
            while not self._stop.is_set():
                try:
                    async with session.get(self.url, headers=KEY) as resp:
                        body = await resp.read()
                        if resp.status == 200:
                            self.ok += 1
                            self.backends[json.loads(body)["backend"]] += 1
                        else:
                            self.failures.append(f"{resp.status} {body[:200]!r}")
                except (aiohttp.ClientError, TimeoutError) as exc:
                    self.failures.append(repr(exc))
                tick += interval
                # The load's pace, not synchronisation.
                await asyncio.sleep(max(0.0, tick - time.monotonic()))
