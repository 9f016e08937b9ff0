"""The orders service's change feed: every change is a row of `order_events` (written by SQLite
triggers, in the same statement as the change), served as Server-Sent Events and on a WebSocket.

Event ids are the rows' ids, so `Last-Event-ID` (or `?after=`) resumes exactly where a client
left off, from the database. Handlers of this process wake up when it changes an order; changes
made by other processes show at the next heartbeat, when every feed reads the table again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import WSMsgType, hdrs, web

from apigw.services.storage import Row, database, fetch_all, fetch_value
from apigw.shared.appkeys import ORDER_FEED_KEY

# A quiet feed sends a comment (SSE) this often, and reads the table again.
HEARTBEAT = 15.0
# The subprotocol of /orders/live; a browser that offers protocols needs one chosen.
LIVE_PROTOCOL = "orders.v1"
_BATCH = 100
_SINCE = """
    SELECT event_id, type, order_id, data FROM order_events
    WHERE event_id > ? ORDER BY event_id LIMIT ?
"""
_LAST = "SELECT coalesce(max(event_id), 0) FROM order_events"
# The table and the triggers that fill it: part of the orders schema (version 2). Spelled out:
# no SQL is assembled at run time.
EVENT_STATEMENTS = (
    """CREATE TABLE order_events (
        event_id INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        order_id INTEGER NOT NULL,
        data TEXT NOT NULL
    )""",
    """CREATE TRIGGER order_created AFTER INSERT ON orders BEGIN
        INSERT INTO order_events (type, order_id, data) VALUES ('created', NEW.order_id,
            json_object('order_id', NEW.order_id, 'user_id', NEW.user_id, 'item', NEW.item,
                'quantity', NEW.quantity, 'status', NEW.status, 'created_at', NEW.created_at));
    END""",
    """CREATE TRIGGER order_updated AFTER UPDATE ON orders BEGIN
        INSERT INTO order_events (type, order_id, data) VALUES ('updated', NEW.order_id,
            json_object('order_id', NEW.order_id, 'user_id', NEW.user_id, 'item', NEW.item,
                'quantity', NEW.quantity, 'status', NEW.status, 'created_at', NEW.created_at));
    END""",
    """CREATE TRIGGER order_deleted AFTER DELETE ON orders BEGIN
        INSERT INTO order_events (type, order_id, data)
        VALUES ('deleted', OLD.order_id, json_object('order_id', OLD.order_id));
    END""",
)
_SSE_HEADERS = {
    hdrs.CONTENT_TYPE: "text/event-stream",
    hdrs.CACHE_CONTROL: "no-cache",
    # Proxies that buffer (nginx) pass this stream on at once.
    "X-Accel-Buffering": "no",
}


class OrderFeed:
    """Wakes the feeds of this process when it changed an order, or when it shuts down."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self.closed = False

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, quiet: float) -> bool:
        """True when something changed, False after `quiet` seconds without a change."""
        changed = self._changed
        try:
            async with asyncio.timeout(quiet):
                await changed.wait()
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        self.closed = True
        self.notify()


async def _events_since(request: web.Request, after: int) -> list[Row]:
    return await fetch_all(database(request), _SINCE, (after, _BATCH))


async def _start_after(request: web.Request, after: int | None) -> int:
    """Resume after `Last-Event-ID` or `?after=`; with neither, only new events."""
    last = request.headers.get("Last-Event-ID", "").strip()
    if last.isdigit() and len(last) < 19:
        return int(last)
    if after is not None:
        return after
    return int(await fetch_value(database(request), _LAST))


async def order_events(request: web.Request, after: int | None = None) -> web.StreamResponse:
    feed = request.app[ORDER_FEED_KEY]
    last = await _start_after(request, after)
    response = web.StreamResponse(headers=_SSE_HEADERS)
    await response.prepare(request)
    # An EventSource that lost the stream tries again after a second, with Last-Event-ID.
    await response.write(b"retry: 1000\n\n")
    while not feed.closed:
        rows = await _events_since(request, last)
        for row in rows:
            last = row["event_id"]
            await response.write(
                f"id: {last}\nevent: {row['type']}\ndata: {row['data']}\n\n".encode()
            )
        if not rows and not await feed.wait(HEARTBEAT):
            await response.write(b": keepalive\n\n")
    return response


async def order_live(request: web.Request, after: int | None = None) -> web.WebSocketResponse:
    feed = request.app[ORDER_FEED_KEY]
    last = await _start_after(request, after)
    ws = web.WebSocketResponse(protocols=(LIVE_PROTOCOL,), heartbeat=HEARTBEAT, compress=False)
    await ws.prepare(request)
    sender = asyncio.create_task(_send_events(request, ws, feed, last))
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                data = None
            if isinstance(data, dict) and data.get("type") == "ping":
                await ws.send_json({"type": "pong", "data": data.get("data")})
            else:
                await ws.send_json(
                    {"type": "error", "detail": 'Send {"type": "ping"}; events come by themselves.'}
                )
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    return ws


async def _send_events(
    request: web.Request, ws: web.WebSocketResponse, feed: OrderFeed, last: int
) -> None:
    while not ws.closed:
        if feed.closed:
            await ws.close(code=1001, message=b"service shutting down")
            return
        rows = await _events_since(request, last)
        for row in rows:
            last = row["event_id"]
            event = {"id": last, "type": row["type"], "order": json.loads(row["data"])}
            await ws.send_json(event)
        if not rows:
            await feed.wait(HEARTBEAT)


def setup_order_feed(app: web.Application) -> OrderFeed:
    feed = OrderFeed()
    app[ORDER_FEED_KEY] = feed

    async def close_feed(app: web.Application) -> None:
        # Streams and sockets end now, so shutdown does not wait out their grace period.
        feed.close()

    app.on_shutdown.append(close_feed)
    return feed
