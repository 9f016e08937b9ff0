"""The orders change feed's storage: triggers write every change, and an older file is upgraded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from apigw.services.orders import SCHEMA
from tests.support.apps import ServiceFactory


async def test_every_change_is_an_event_written_with_it(
    make_orders: ServiceFactory, tmp_path: Path
) -> None:
    db_path = tmp_path / "orders.db"
    orders = await make_orders(db_path)
    created = await orders.post("/orders", json={"user_id": 2, "item": "Loom"})
    order = await created.json()
    await orders.patch(f"/orders/{order['order_id']}", json={"status": "paid"})
    await orders.delete(f"/orders/{order['order_id']}")
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT type, order_id, data FROM order_events WHERE order_id = ? ORDER BY event_id",
            (order["order_id"],),
        ).fetchall()
    assert [(kind, order_id) for kind, order_id, _ in rows] == [
        ("created", order["order_id"]),
        ("updated", order["order_id"]),
        ("deleted", order["order_id"]),
    ]
    assert json.loads(rows[0][2]) == order
    assert json.loads(rows[1][2])["status"] == "paid"


async def test_a_version_1_file_gets_the_feed_and_keeps_its_orders(
    make_orders: ServiceFactory, tmp_path: Path
) -> None:
    db_path = tmp_path / "orders.db"
    with sqlite3.connect(db_path) as db:
        # The schema before the feed: the orders table and its index, version 1.
        for statement in SCHEMA.statements[:2]:
            db.execute(statement)
        db.execute(
            "INSERT INTO orders (user_id, item, quantity, status) VALUES (9, 'Old', 1, 'paid')"
        )
        db.execute("PRAGMA user_version = 1")
    orders = await make_orders(db_path)
    assert (await (await orders.get("/orders/1")).json())["item"] == "Old"
    await orders.patch("/orders/1", json={"status": "shipped"})
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert db.execute("SELECT type FROM order_events").fetchall() == [("updated",)]
