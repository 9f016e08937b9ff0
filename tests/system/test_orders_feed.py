"""The orders feed through the shipped gateway: SSE with resume, the WebSocket, and the
/docs/live page in a real browser. Users, orders and the gateway run as real processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import DEMO_KEY, TEST_SECRET
from tests.procs import System, call
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, STEP_TIMEOUT_MS, sync_playwright

KEY = {"x-api-key": DEMO_KEY}
ORDER = {"user_id": 1, "item": "Difference engine", "quantity": 2}


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    system = System(tmp_path, secret=TEST_SECRET)
    try:
        system.start()
        yield system
    finally:
        system.stop()


async def next_event(resp: aiohttp.ClientResponse) -> dict[str, str]:
    """The next event of an SSE stream (comments skipped) as its fields."""
    while True:
        fields: dict[str, str] = {}
        while (line := (await asyncio.wait_for(resp.content.readline(), 15)).decode()) != "\n":
            name, _, value = line.rstrip("\n").partition(": ")
            fields[name] = value
        if "data" in fields:
            return fields


async def create_order(gateway: str) -> dict[str, Any]:
    answer = await asyncio.to_thread(
        call, "POST", gateway + "/orders", json_body=ORDER, headers=KEY
    )
    assert answer.status == 201
    order: dict[str, Any] = answer.body
    return order


async def test_sse_feed_delivers_changes_and_resumes_from_last_event_id(system: System) -> None:
    async with aiohttp.ClientSession(headers=KEY) as session:
        async with session.get(system.gateway + "/orders/events") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream"
            order = await create_order(system.gateway)
            created = await next_event(resp)
            assert created["event"] == "created"
            assert json.loads(created["data"]) == order
            await asyncio.to_thread(
                call,
                "PATCH",
                system.gateway + f"/orders/{order['order_id']}",
                json_body={"status": "shipped"},
                headers=KEY,
            )
            updated = await next_event(resp)
            assert updated["event"] == "updated"
            assert json.loads(updated["data"])["status"] == "shipped"
        # Gone for a while: the change made meanwhile comes first after reconnecting.
        await asyncio.to_thread(
            call, "DELETE", system.gateway + f"/orders/{order['order_id']}", headers=KEY
        )
        async with session.get(
            system.gateway + "/orders/events", headers={"Last-Event-ID": created["id"]}
        ) as resp:
            replayed = [await next_event(resp), await next_event(resp)]
    assert [e["event"] for e in replayed] == ["updated", "deleted"]
    assert json.loads(replayed[1]["data"]) == {"order_id": order["order_id"]}
    assert int(replayed[0]["id"]) > int(created["id"])


async def test_websocket_feed_sends_changes_as_json_and_answers_ping(system: System) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            system.gateway + "/orders/live", headers=KEY, protocols=("orders.v1",)
        ) as ws,
    ):
        assert ws.protocol == "orders.v1"
        await ws.send_json({"type": "ping", "data": 42})
        assert await ws.receive_json(timeout=10) == {"type": "pong", "data": 42}
        order = await create_order(system.gateway)
        event = await ws.receive_json(timeout=10)
        assert event["type"] == "created"
        assert event["order"] == order


def test_live_page_shows_an_order_created_through_the_gateway(system: System) -> None:
    playwright_cm = sync_playwright()
    from playwright.sync_api import expect

    with playwright_cm as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS)
            expect.set_options(timeout=STEP_TIMEOUT_MS)
            page.goto(system.gateway + "/docs/live")
            page.locator("#key").fill(DEMO_KEY)
            page.get_by_role("button", name="Connect").click()
            expect(page.locator("#status")).to_have_text("connected")
            answer = call("POST", system.gateway + "/orders", json_body=ORDER, headers=KEY)
            assert answer.status == 201
            order_id = answer.body["order_id"]
            expect(page.locator("#events li.created").first).to_contain_text(
                f"created order {order_id}"
            )
            page.get_by_role("button", name="Ping").click()
            expect(page.locator("#events li").first).to_contain_text("pong")
        finally:
            browser.close()
    # The key went through the gateway as a subprotocol: it is in no process's log.
    for proc in system.procs.values():
        assert DEMO_KEY not in proc.log()
