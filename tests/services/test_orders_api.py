"""The orders service over real sockets: CRUD, defaults, filters with pagination, validation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.apps import ServiceClient, problem

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_sample_order_keeps_the_classic_shape(orders: ServiceClient) -> None:
    resp = await orders.get("/orders/1")
    assert resp.status == 200
    order = await resp.json()
    assert order["order_id"] == 1
    assert order["item"] == "Analytical engine"
    assert {"user_id", "quantity", "status", "created_at"} <= order.keys()


async def test_create_fills_defaults_and_answers_201_with_location(orders: ServiceClient) -> None:
    resp = await orders.post("/orders", json={"user_id": 7, "item": "Slide rule"})
    assert resp.status == 201
    order = await resp.json()
    assert resp.headers["Location"] == f"/orders/{order['order_id']}"
    assert order["order_id"] == 4
    assert (order["user_id"], order["item"], order["quantity"], order["status"]) == (
        7,
        "Slide rule",
        1,
        "pending",
    )
    assert ISO_UTC.fullmatch(order["created_at"])
    assert await (await orders.get(resp.headers["Location"])).json() == order


async def test_patch_changes_only_the_status(orders: ServiceClient) -> None:
    before = await (await orders.get("/orders/3")).json()
    resp = await orders.patch("/orders/3", json={"status": "cancelled"})
    assert resp.status == 200
    assert await resp.json() == {**before, "status": "cancelled"}


async def test_put_replaces_and_fields_left_out_take_their_defaults(orders: ServiceClient) -> None:
    before = await (await orders.get("/orders/3")).json()
    assert (before["quantity"], before["status"]) == (2, "delivered")
    resp = await orders.put("/orders/3", json={"user_id": 3, "item": "Compiler manual, 2nd ed."})
    after = await resp.json()
    assert after == {
        **before,
        "item": "Compiler manual, 2nd ed.",
        "quantity": 1,
        "status": "pending",
    }
    assert after["created_at"] == before["created_at"]


async def test_delete_answers_204_and_unknown_orders_are_404(orders: ServiceClient) -> None:
    assert (await orders.delete("/orders/2")).status == 204
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        body = {"user_id": 1, "item": "x"} if method in ("PUT", "PATCH") else None
        resp = await orders.request(method, "/orders/2", json=body)
        assert (await problem(resp, 404))["detail"] == "No order with id 2."


async def test_filter_by_user_pages_through_only_that_users_orders(orders: ServiceClient) -> None:
    for n in range(5):
        await orders.post("/orders", json={"user_id": 1, "item": f"Gear {n}"})
        await orders.post("/orders", json={"user_id": 2, "item": f"Valve {n}"})
    seen: list[int] = []
    link: str | None = "/orders?user_id=1&limit=2"
    while link is not None:
        page = await (await orders.get(link)).json()
        assert all(order["user_id"] == 1 for order in page["items"])
        seen += [order["order_id"] for order in page["items"]]
        link = page["next"]
        if link is not None:
            assert "user_id=1" in link
            assert "limit=2" in link
    assert seen == [1, 4, 6, 8, 10, 12]


async def test_filter_by_status(orders: ServiceClient) -> None:
    page = await (await orders.get("/orders?status=shipped")).json()
    assert [order["order_id"] for order in page["items"]] == [2]


@pytest.mark.parametrize(
    ("method", "path", "body", "fields"),
    [
        ("POST", "/orders", {"item": "x"}, ["body.user_id"]),
        ("POST", "/orders", {"user_id": 1, "item": "x", "quantity": 0}, ["body.quantity"]),
        ("POST", "/orders", {"user_id": "1", "item": "x"}, ["body.user_id"]),
        ("POST", "/orders", {"user_id": 1, "item": "x", "status": "lost"}, ["body.status"]),
        (
            "POST",
            "/orders",
            {"user_id": 1, "item": "x", "created_at": "2020-01-01T00:00:00Z"},
            ["body.created_at"],
        ),
        ("PATCH", "/orders/1", {"quantity": 1.5}, ["body.quantity"]),
        ("GET", "/orders?user_id=0", None, ["user_id"]),
        ("GET", "/orders?status=lost", None, ["status"]),
        ("GET", "/orders/one", None, ["order_id"]),
    ],
    ids=[
        "missing-user",
        "zero-quantity",
        "user-id-as-string",
        "unknown-status",
        "server-set-field",
        "fractional-quantity",
        "filter-user-zero",
        "filter-unknown-status",
        "id-not-integer",
    ],
)
async def test_invalid_request_is_400_naming_each_bad_field(
    orders: ServiceClient, method: str, path: str, body: Any, fields: list[str]
) -> None:
    answer = await problem(await orders.request(method, path, json=body), 400)
    assert [e["field"] for e in answer["errors"]] == fields
