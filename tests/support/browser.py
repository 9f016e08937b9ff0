"""Headless Debian chromium driven by Playwright, for the browser tests under tests/system.

The browser comes from scripts/install-system-packages.sh; Playwright never downloads one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

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


def playwright_expect() -> Any:
    """Playwright's `expect`, after checking the browser is there: call it before starting
    processes, so a missing browser fails at once, with the fix in the message, never a skip."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (scripts/)")
    try:
        from playwright.async_api import expect
    except ImportError:
        pytest.fail("playwright is not installed: `make test` installs requirements-dev.txt")
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    return expect


@asynccontextmanager
async def open_page(**page_options: Any) -> AsyncIterator[Any]:
    """A page of a fresh headless chromium, closed with its browser on the way out."""
    playwright_expect()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(**page_options)
            page.set_default_timeout(STEP_TIMEOUT_MS)
            yield page
        finally:
            await browser.close()
