"""The orders service's operations over its SQLite table; specs/orders.yaml describes its API.

An order names its user by id only: the users live in another service and another database, so
the orders service does not check that the user exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import hdrs, web

from apigw.services.app import created, page
from apigw.services.order_events import (
    EVENT_STATEMENTS,
    order_events,
    order_live,
    setup_order_feed,
)
from apigw.services.storage import Schema, database, fetch_all, fetch_one, setup_database
from apigw.services.validation import Operation, setup_operations
from apigw.shared.appkeys import ORDER_FEED_KEY
from apigw.shared.errors import ProblemError

SPEC_FILE = Path(__file__).resolve().parent / "specs" / "orders.yaml"
DB_VARIABLE = "ORDERS_DB"
DB_FILE = "orders.db"

SCHEMA = Schema(
    statements=(
        # AUTOINCREMENT: a deleted order's id is never given to a new order.
        """CREATE TABLE orders (
            order_id INTEGER PRIMARY KEY AUTOINCREMENT,
            user_id INTEGER NOT NULL,
            item TEXT NOT NULL,
            quantity INTEGER NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        # Listing one user's orders walks this index in id order, page after page.
        "CREATE INDEX orders_by_user ON orders (user_id, order_id)",
        *EVENT_STATEMENTS,
    ),
    version=2,
    upgrades={1: EVENT_STATEMENTS},
    # The classic `GET /orders/1` example answers on a new database.
    seed=tuple(
        (
            "INSERT INTO orders (order_id, user_id, item, quantity, status) VALUES (?, ?, ?, ?, ?)",
            row,
        )
        for row in (
            (1, 1, "Analytical engine", 1, "pending"),
            (2, 2, "Bombe", 1, "shipped"),
            (3, 3, "Compiler manual", 2, "delivered"),
        )
    ),
)

# Column lists are spelled out in each statement: no SQL is assembled at run time.
_INSERT = """
    INSERT INTO orders (user_id, item, quantity, status)
    VALUES (:user_id, :item, :quantity, :status)
    RETURNING order_id, user_id, item, quantity, status, created_at
"""
_LIST = """
    SELECT order_id, user_id, item, quantity, status, created_at FROM orders
    WHERE order_id > :after
      AND (:user_id IS NULL OR user_id = :user_id)
      AND (:status IS NULL OR status = :status)
    ORDER BY order_id LIMIT :limit
"""
_GET = """
    SELECT order_id, user_id, item, quantity, status, created_at FROM orders
    WHERE order_id = ?
"""
_UPDATE = """
    UPDATE orders SET
        user_id = coalesce(:user_id, user_id),
        item = coalesce(:item, item),
        quantity = coalesce(:quantity, quantity),
        status = coalesce(:status, status)
    WHERE order_id = :order_id
    RETURNING order_id, user_id, item, quantity, status, created_at
"""
_FIELDS = ("user_id", "item", "quantity", "status")


def changed(request: web.Request) -> None:
    # The triggers wrote the event with the change; the feeds of this process look now.
    request.app[ORDER_FEED_KEY].notify()


def _not_found(order_id: int) -> ProblemError:
    return ProblemError(404, f"No order with id {order_id}.")


async def create_order(request: web.Request, body: dict[str, Any]) -> web.Response:
    # The document's defaults (quantity 1, status "pending") are already filled in.
    order = await fetch_one(database(request), _INSERT, {f: body[f] for f in _FIELDS})
    assert order is not None  # INSERT ... RETURNING yields the row it inserted
    changed(request)
    return created(f"/orders/{order['order_id']}", order)


async def list_orders(
    request: web.Request,
    limit: int,
    after: int,
    user_id: int | None = None,
    status: str | None = None,
) -> web.Response:
    params = {"after": after, "user_id": user_id, "status": status, "limit": limit + 1}
    rows = await fetch_all(database(request), _LIST, params)
    filters = {"user_id": user_id, "status": status}
    return page(request, rows, limit=limit, id_field="order_id", filters=filters)


async def get_order(request: web.Request, order_id: int) -> web.Response:
    order = await fetch_one(database(request), _GET, (order_id,))
    if order is None:
        raise _not_found(order_id)
    return web.json_response(order)


async def _update(request: web.Request, order_id: int, body: dict[str, Any]) -> web.Response:
    # PUT and PATCH share one statement: PUT's document requires (or defaults) every field,
    # PATCH's any of them; a field left out is None here and keeps its value.
    params: dict[str, Any] = {f: body.get(f) for f in _FIELDS}
    params["order_id"] = order_id
    order = await fetch_one(database(request), _UPDATE, params)
    if order is None:
        raise _not_found(order_id)
    changed(request)
    return web.json_response(order)


async def replace_order(request: web.Request, order_id: int, body: dict[str, Any]) -> web.Response:
    return await _update(request, order_id, body)


async def update_order(request: web.Request, order_id: int, body: dict[str, Any]) -> web.Response:
    return await _update(request, order_id, body)


async def delete_order(request: web.Request, order_id: int) -> web.Response:
    deleted = await fetch_one(
        database(request), "DELETE FROM orders WHERE order_id = ? RETURNING order_id", (order_id,)
    )
    if deleted is None:
        raise _not_found(order_id)
    changed(request)
    return web.Response(status=204)


OPERATIONS: dict[str, Operation] = {
    "create_order": create_order,
    "list_orders": list_orders,
    "get_order": get_order,
    "replace_order": replace_order,
    "update_order": update_order,
    "delete_order": delete_order,
    "order_events": order_events,
    "order_live": order_live,
}


async def _feed_methods(request: web.Request) -> web.Response:
    raise web.HTTPMethodNotAllowed(request.method, [hdrs.METH_GET])


def setup_orders(app: web.Application, db_path: Path) -> None:
    setup_database(app, db_path, SCHEMA)
    setup_order_feed(app)
    setup_operations(app, SPEC_FILE, OPERATIONS)
    for path in ("/orders/events", "/orders/live"):
        # Other methods would match /orders/{order_id} (and fail as a bad id): 405 instead.
        app.router.add_route("*", path, _feed_methods)
