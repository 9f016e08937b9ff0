"""The /status page in headless Chromium while traffic flows: it fills in live, loads nothing
from elsewhere, and is saved as artifacts/status-page.png."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp

from tests.support import DEMO_KEY, TEST_SECRET
from tests.support.browser import ARTIFACTS, open_page, playwright_expect
from tests.support.processes import System


class Load:
    """Requests through the gateway until stopped: users, orders, a 404 and some 401s."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.statuses: list[int] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        paths = ["/users/1", "/orders/1", "/users/2", "/users/42"]
        i = 0
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            while not self._stop.is_set():
                headers = {"x-api-key": DEMO_KEY} if i % 10 else {}
                async with http.get(self.gateway + paths[i % len(paths)], headers=headers) as resp:
                    await resp.read()
                    self.statuses.append(resp.status)
                i += 1

    async def __aenter__(self) -> Load:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


async def test_status_page_shows_routes_targets_and_live_traffic(system: System) -> None:
    expect = playwright_expect()

    gateway = await system.start_three()
    outside: list[str] = []
    async with (
        Load(gateway.url) as load,
        open_page(viewport={"width": 1280, "height": 1000}) as page,
    ):

        def record(request: Any) -> None:
            if not request.url.startswith(gateway.url + "/"):
                outside.append(request.url)

        page.on("request", record)
        await page.goto(gateway.url + "/status")
        users = page.locator('section.route[data-route="/users"]')
        orders = page.locator('section.route[data-route="/orders"]')
        await expect(users).to_be_visible()
        await expect(orders).to_be_visible()
        # Live: the rate and latency fill in without the page being reloaded.
        await expect(users.locator(".rps")).not_to_have_text("0.0")
        await expect(orders.locator(".rps")).not_to_have_text("0.0")
        await expect(users.locator(".p95")).to_have_text(re.compile(r"[0-9.]+ ms"))
        await expect(users.locator("tr.target .badge")).to_have_text("up")
        await expect(page.locator("#rejections")).to_contain_text("auth")
        await expect(page.locator("#live")).to_contain_text("live")
        await expect(page.locator("#version")).to_have_text("0.1.0")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
        html = await page.content()
    assert outside == []
    assert 200 in load.statuses and 401 in load.statuses
    for secret in (DEMO_KEY, TEST_SECRET):
        assert secret not in html
