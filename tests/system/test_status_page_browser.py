"""The /status page in headless Chromium while traffic flows: it fills in live, loads nothing
from elsewhere, and is saved as artifacts/status-page.png."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEMO_KEY, TEST_SECRET
from tests.procs import System, call
from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, STEP_TIMEOUT_MS, sync_playwright


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    system = System(tmp_path, secret=TEST_SECRET)
    try:
        yield system
    finally:
        system.stop()


class Load:
    """Requests through the gateway from a thread until stopped: users, orders and some 401s."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        key = {"x-api-key": DEMO_KEY}
        paths = ["/users/1", "/orders/1", "/users/2", "/users/42"]
        i = 0
        while not self.stop.is_set():
            path = paths[i % len(paths)]
            headers = key if i % 10 else {}
            self.statuses.append(call("GET", self.gateway + path, headers=headers).status)
            i += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


def test_status_page_shows_routes_targets_and_live_traffic(system: System) -> None:
    playwright_cm = sync_playwright()
    from playwright.sync_api import expect

    system.start()
    outside: list[str] = []
    with Load(system.gateway) as load, playwright_cm as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            expect.set_options(timeout=STEP_TIMEOUT_MS)

            def record(request: Any) -> None:
                if not request.url.startswith(system.gateway + "/"):
                    outside.append(request.url)

            page.on("request", record)
            page.goto(system.gateway + "/status")
            users = page.locator('section.route[data-route="/users"]')
            orders = page.locator('section.route[data-route="/orders"]')
            expect(users).to_be_visible()
            expect(orders).to_be_visible()
            # Live: the request rate becomes non-zero without reloading the page.
            expect(users.locator(".rps")).not_to_have_text("0.0")
            expect(orders.locator(".rps")).not_to_have_text("0.0")
            expect(users.locator(".p95")).to_have_text(re.compile(r"[0-9.]+ ms"))
            expect(users.locator("tr.target .badge")).to_have_text("up")
            expect(page.locator("#rejections")).to_contain_text("auth")
            expect(page.locator("#live")).to_contain_text("live")
            expect(page.locator("#version")).to_have_text("0.1.0")
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
            html = page.content()
        finally:
            browser.close()
    assert outside == []
    assert 200 in load.statuses and 401 in load.statuses
    for secret in (DEMO_KEY, TEST_SECRET):
        assert secret not in html
