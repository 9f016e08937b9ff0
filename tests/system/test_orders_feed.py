"""The orders feed through the shipped gateway: SSE with resume, the WebSocket, and the
/docs/live page in a real browser. Users, orders and the gateway run as real processes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from tests.support import DEMO_KEY, KEY
from tests.support.browser import open_page, playwright_expect
from tests.support.processes import System

ORDER = {"user_id": 1, "item": "Difference engine", "quantity": 2}


async def next_event(resp: aiohttp.ClientResponse) -> dict[str, str]:
    """The next event of an SSE stream (comments skipped) as its fields."""
    while True:
        fields: dict[str, str] = {}
        while (line := (await asyncio.wait_for(resp.content.readline(), 15)).decode()) != "\n":
            name, _, value = line.rstrip("\n").partition(": ")
            fields[name] = value
        if "data" in fields:
            return fields


async def create_order(http: aiohttp.ClientSession, gateway: str) -> dict[str, Any]:
    async with http.post(gateway + "/orders", json=ORDER, headers=KEY) as resp:
        assert resp.status == 201
        order: dict[str, Any] = await resp.json()
    return order


async def test_sse_feed_delivers_changes_and_resumes_from_last_event_id(system: System) -> None:
    gateway = (await system.start_three()).url
    async with aiohttp.ClientSession(headers=KEY) as http:
        async with http.get(gateway + "/orders/events") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream"
            order = await create_order(http, gateway)
            created = await next_event(resp)
            assert created["event"] == "created"
            assert json.loads(created["data"]) == order
            path = f"{gateway}/orders/{order['order_id']}"
            async with http.patch(path, json={"status": "shipped"}) as changed:
                assert changed.status == 200
            updated = await next_event(resp)
            assert updated["event"] == "updated"
            assert json.loads(updated["data"])["status"] == "shipped"
        # Gone for a while: the change made meanwhile comes first after reconnecting.
        async with http.delete(path) as deleted:
            assert deleted.status == 204
        resume = {"Last-Event-ID": created["id"]}
        async with http.get(gateway + "/orders/events", headers=resume) as resp:
            replayed = [await next_event(resp), await next_event(resp)]
    assert [e["event"] for e in replayed] == ["updated", "deleted"]
    assert json.loads(replayed[1]["data"]) == {"order_id": order["order_id"]}
    assert int(replayed[0]["id"]) > int(created["id"])


async def test_websocket_feed_sends_changes_as_json_and_answers_ping(system: System) -> None:
    gateway = (await system.start_three()).url
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(gateway + "/orders/live", headers=KEY, protocols=("orders.v1",)) as ws,
    ):
        assert ws.protocol == "orders.v1"
        await ws.send_json({"type": "ping", "data": 42})
        assert await ws.receive_json(timeout=10) == {"type": "pong", "data": 42}
        order = await create_order(http, gateway)
        event = await ws.receive_json(timeout=10)
        assert event["type"] == "created"
        assert event["order"] == order


async def test_live_page_shows_an_order_created_through_the_gateway(system: System) -> None:
    expect = playwright_expect()

    gateway = (await system.start_three()).url
    async with open_page() as page, aiohttp.ClientSession() as http:
        await page.goto(gateway + "/docs/live")
        await page.locator("#key").fill(DEMO_KEY)
        await page.get_by_role("button", name="Connect").click()
        await expect(page.locator("#status")).to_have_text("connected")
        order = await create_order(http, gateway)
        await expect(page.locator("#events li.created").first).to_contain_text(
            f"created order {order['order_id']}"
        )
        await page.get_by_role("button", name="Ping").click()
        await expect(page.locator("#events li").first).to_contain_text("pong")
    # The key went through the gateway as a subprotocol: it is in no process's log.
    for proc in system.procs:
        assert DEMO_KEY not in proc.log()
