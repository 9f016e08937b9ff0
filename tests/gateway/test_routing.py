"""Routing: longest prefix on a segment boundary, and no way out of a route's prefix."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from apigw.routing import RouteTable
from tests.support import KEY, PROBLEM
from tests.support.apps import GatewayFactory, make_settings
from tests.support.upstream import Upstream, UpstreamFactory
from tests.support.wire import exchange, request


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users", "users"),
        ("/users/", "users"),
        ("/users/1", "users"),
        ("/users/admin/1", "admin"),
        ("/users/admin", "admin"),
        ("/users/administrator", "users"),
        ("/usersx", None),
        ("/user", None),
        ("/", None),
        ("/orders/1", "orders"),
    ],
)
def test_longest_prefix_on_segment_boundary(path: str, expected: str | None) -> None:
    table = RouteTable({"/users": "users", "/users/admin": "admin", "/orders": "orders"})
    assert table.match(path) == expected


def test_root_prefix_catches_everything_else() -> None:
    table = RouteTable({"/": "root", "/users": "users"})
    assert table.match("/users/1") == "users"
    assert table.match("/anything") == "root"


@pytest.mark.parametrize(
    "raw",
    [
        "/users/../orders/1",
        "/users/%2e%2e/orders/1",
        "/users/%2E%2E/orders/1",
        "/users/.%2e/orders/1",
        "/users/%2e./orders/1",
        "/users/./1",
        "/users/%2e/1",
        "/users/1/..",
        "/users/1%2f..%2forders",
        "/users/1%2F2",
        "/users/1%5c..%5corders",
        "/users/1\\..\\orders",
        "/users/1%3fadmin=1",
        "/users/1%3Fadmin=1",
        "/users/1%23frag",
        "/users/1%00",
        "/users/%ff",
        "/users/1%0d%0aX-Injected:%201",
    ],
)
async def test_path_escapes_are_rejected_with_400(
    gateway: TestClient[Any, Any], echo_upstream: Upstream, raw: str
) -> None:
    assert gateway.port is not None
    reply = (await exchange(gateway.port, request(raw))).reply
    assert reply.status == 400
    assert reply.headers["Content-Type"] == PROBLEM
    assert echo_upstream.seen == []


@pytest.mark.parametrize(
    "raw",
    [
        "/users/1",
        "/users/1?x=1&y=%2F",
        "/users/a%20b",
        "/users/caf%C3%A9",
        "/users/1;matrix=1",
        "/users/.hidden",
        "/users/..x",
        "/users/1?next=/../admin",
        "/users",
    ],
)
async def test_path_and_query_reach_the_upstream_unchanged(
    gateway: TestClient[Any, Any], echo_upstream: Upstream, raw: str
) -> None:
    assert gateway.port is not None
    assert (await exchange(gateway.port, request(raw))).reply.status == 200
    assert echo_upstream.seen[0].raw_path == raw


async def test_no_route_is_404(gateway: TestClient[Any, Any], echo_upstream: Upstream) -> None:
    for path in ("/usersx/1", "/other", "/"):
        resp = await gateway.get(path, headers=KEY)
        assert resp.status == 404, path
    assert echo_upstream.seen == []


async def test_each_prefix_goes_to_its_own_upstream(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    users, orders = await make_upstream(), await make_upstream()
    client = await make_gateway(make_settings({"/users": [users.url], "/orders": [orders.url]}))
    assert (await client.get("/users/1", headers=KEY)).status == 200
    assert (await client.get("/orders/1", headers=KEY)).status == 200
    assert [s.raw_path for s in users.seen] == ["/users/1"]
    assert [s.raw_path for s in orders.seen] == ["/orders/1"]


async def test_upstream_base_path_is_prepended(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    client = await make_gateway(make_settings({"/users": [echo_upstream.url + "/api/v1/"]}))
    resp = await client.get("/users/7?q=1", headers=KEY)
    assert resp.status == 200
    assert echo_upstream.seen[0].raw_path == "/api/v1/users/7?q=1"
