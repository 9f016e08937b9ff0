"""Swagger UI in a real browser: authorize with the demo key, then "Try it out" through the gateway.

Headless Debian chromium (scripts/install-system-packages.sh) driven by Playwright; no browser
download.
"""

from __future__ import annotations

from typing import Any

from tests.support import DEMO_KEY
from tests.support.browser import ARTIFACTS, open_page, playwright_expect
from tests.support.processes import System, docs_listing


async def screenshot(page: Any, operation: Any, name: str) -> None:
    """Save the operation from its title down to the response it got, as a person saw it."""
    top = await operation.bounding_box()
    bottom = await operation.locator(".live-responses-table").bounding_box()
    assert top is not None and bottom is not None
    # Boxes are relative to the scrolled viewport; a full-page clip is relative to the page.
    scrolled = await page.evaluate("window.scrollY")
    clip = {
        "x": top["x"],
        "y": top["y"] + scrolled,
        "width": top["width"],
        "height": bottom["y"] + bottom["height"] - top["y"],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True, clip=clip)


async def test_swagger_ui_authorizes_and_runs_operations_through_the_gateway(
    system: System,
) -> None:
    expect = playwright_expect()

    gateway = await system.start_three()
    await docs_listing(gateway, {"/users/{user_id}", "/orders"})
    async with open_page(viewport={"width": 1280, "height": 1600}) as page:
        await page.goto(gateway.url + "/docs/")

        await page.locator(".auth-wrapper .authorize").click()
        dialog = page.locator(".modal-ux")
        await dialog.locator("input").fill(DEMO_KEY)
        await dialog.get_by_role("button", name="Apply credentials").click()
        await expect(dialog.get_by_role("heading", name="Authorized")).to_be_visible()
        await dialog.get_by_role("button", name="Close").click()

        get_user = page.locator("#operations-users-get_user")
        await get_user.locator(".opblock-summary").click()
        await get_user.get_by_role("button", name="Try it out").click()
        await get_user.locator("input[placeholder='user_id']").fill("1")
        await get_user.get_by_role("button", name="Execute").click()
        await expect(
            get_user.locator(".live-responses-table tbody .response-col_status")
        ).to_have_text("200")
        await expect(get_user.locator(".live-responses-table")).to_contain_text("Ada Lovelace")
        await screenshot(page, get_user, "swagger-get-user.png")

        create_order = page.locator("#operations-orders-create_order")
        await create_order.locator(".opblock-summary").click()
        await create_order.get_by_role("button", name="Try it out").click()
        # The example body Swagger UI fills in from the document is a valid order.
        await create_order.get_by_role("button", name="Execute").click()
        await expect(
            create_order.locator(".live-responses-table tbody .response-col_status")
        ).to_have_text("201")
        await expect(create_order.locator(".live-responses-table")).to_contain_text("/orders/4")

        await screenshot(page, create_order, "swagger-post-order.png")
        await page.screenshot(path=str(ARTIFACTS / "swagger-page.png"), full_page=True)
