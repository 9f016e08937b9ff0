"""Swagger UI in a real browser: authorize with the demo key, then "Try it out" through the gateway.

Headless Debian chromium (scripts/install-browser.sh) driven by Playwright; no browser download.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DEMO_KEY, TEST_SECRET
from tests.procs import ROOT, System

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "artifacts"
# Generous for a cold browser on a busy 2-core machine; each step usually takes milliseconds.
STEP_TIMEOUT_MS = 15_000


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    system = System(tmp_path, secret=TEST_SECRET)
    try:
        yield system
    finally:
        system.stop()


def sync_playwright() -> Any:
    # A missing browser or driver is a failure with the fix in it, never a skip.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh (as .ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: `make test` installs requirements-dev.txt")
    return sync_playwright()


def screenshot(page: Any, operation: Any, name: str) -> None:
    """Save the operation from its title down to the response it got, as a person saw it."""
    top = operation.bounding_box()
    bottom = operation.locator(".live-responses-table").bounding_box()
    assert top is not None and bottom is not None
    # Boxes are relative to the scrolled viewport; a full-page clip is relative to the page.
    scrolled = page.evaluate("window.scrollY")
    clip = {
        "x": top["x"],
        "y": top["y"] + scrolled,
        "width": top["width"],
        "height": bottom["y"] + bottom["height"] - top["y"],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True, clip=clip)


def test_swagger_ui_authorizes_and_runs_operations_through_the_gateway(system: System) -> None:
    playwright_cm = sync_playwright()
    from playwright.sync_api import expect

    system.start()
    system.wait_for_docs({"/users/{user_id}", "/orders"})
    with playwright_cm as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            expect.set_options(timeout=STEP_TIMEOUT_MS)
            page.goto(system.gateway + "/docs/")

            page.locator(".auth-wrapper .authorize").click()
            dialog = page.locator(".modal-ux")
            dialog.locator("input").fill(DEMO_KEY)
            dialog.get_by_role("button", name="Apply credentials").click()
            expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
            dialog.get_by_role("button", name="Close").click()

            get_user = page.locator("#operations-users-get_user")
            get_user.locator(".opblock-summary").click()
            get_user.get_by_role("button", name="Try it out").click()
            get_user.locator("input[placeholder='user_id']").fill("1")
            get_user.get_by_role("button", name="Execute").click()
            expect(
                get_user.locator(".live-responses-table tbody .response-col_status")
            ).to_have_text("200")
            expect(get_user.locator(".live-responses-table")).to_contain_text("Ada Lovelace")
            screenshot(page, get_user, "swagger-get-user.png")

            create_order = page.locator("#operations-orders-create_order")
            create_order.locator(".opblock-summary").click()
            create_order.get_by_role("button", name="Try it out").click()
            # The example body Swagger UI fills in from the document is a valid order.
            create_order.get_by_role("button", name="Execute").click()
            expect(
                create_order.locator(".live-responses-table tbody .response-col_status")
            ).to_have_text("201")
            expect(create_order.locator(".live-responses-table")).to_contain_text("/orders/4")

            screenshot(page, create_order, "swagger-post-order.png")
            page.screenshot(path=str(ARTIFACTS / "swagger-page.png"), full_page=True)
        finally:
            browser.close()
