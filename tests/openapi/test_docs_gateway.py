"""The gateway's /docs fills in from its backends at start-up, and waits for those that are down."""

from __future__ import annotations

import asyncio
import copy
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from apigw.config import Route
from apigw.openapi.fetch import MAX_CONCURRENT_FETCHES, DocsPublisher
from apigw.openapi.swagger import gateway_components
from tests.support import KEY, TEST_SECRET, free_port
from tests.support.apps import (
    GatewayFactory,
    ServerFactory,
    ServiceClient,
    ServiceFactory,
    make_service_settings,
    make_settings,
    url_of,
)
from tests.support.wait import eventually

ALL_PATHS = {
    "/users",
    "/users/{user_id}",
    "/orders",
    "/orders/{order_id}",
    "/orders/events",
    "/orders/live",
}


async def spec_of(gateway: TestClient[Any, Any]) -> dict[str, Any]:
    resp = await gateway.get("/docs/swagger.json")
    assert resp.status == 200
    spec: dict[str, Any] = await resp.json()
    return spec


async def wait_for_paths(gateway: TestClient[Any, Any], paths: set[str]) -> dict[str, Any]:
    async def merged() -> dict[str, Any] | None:
        spec = await spec_of(gateway)
        return spec if paths <= set(spec["paths"]) else None

    return await eventually(merged, f"{sorted(paths)} in /docs")


@pytest.mark.parametrize("service", ["users", "orders"])
async def test_each_service_serves_a_valid_openapi_document_behind_the_secret(
    users: ServiceClient, orders: ServiceClient, service: str
) -> None:
    client = users if service == "users" else orders
    resp = await client.get("/docs/swagger.json")
    assert resp.status == 200
    spec = await resp.json()
    validate(spec)
    assert all(path.startswith(f"/{service}") for path in spec["paths"])
    assert (await client.get("/docs/swagger.json", headers={"x-gateway-secret": ""})).status == 403


@pytest.fixture
async def gateway_over_both(
    make_gateway: GatewayFactory,
    make_users: ServiceFactory,
    make_orders: ServiceFactory,
    tmp_path: Path,
) -> TestClient[Any, Any]:
    """The gateway in front of both real services, each on its own database file."""
    users = await make_users(tmp_path / "users.db")
    orders = await make_orders(tmp_path / "orders.db")
    return await make_gateway(
        make_settings({"/users": [url_of(users)], "/orders": [url_of(orders)]})
    )


async def test_merged_document_describes_both_services_and_is_valid_openapi(
    gateway_over_both: TestClient[Any, Any],
) -> None:
    spec = await wait_for_paths(gateway_over_both, ALL_PATHS)

    validate(spec)
    assert set(spec["paths"]) == ALL_PATHS
    assert "servers" not in spec
    assert spec["security"] == [{"ApiKeyAuth": []}]
    assert spec["components"]["securitySchemes"] == {
        "ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "x-api-key"}
    }
    operations = [op for item in spec["paths"].values() for op in item.values()]
    assert sorted(op["operationId"] for op in operations) == sorted(
        [
            *(
                f"{verb}_{noun}s" if verb == "list" else f"{verb}_{noun}"
                for noun in ("user", "order")
                for verb in ("create", "list", "get", "replace", "update", "delete")
            ),
            "order_events",
            "order_live",
        ]
    )
    assert all(op["responses"]["401"] for op in operations)
    assert "Still waiting" not in spec["info"]["description"]
    assert TEST_SECRET not in repr(spec)


async def test_docs_operations_work_through_the_gateway(
    gateway_over_both: TestClient[Any, Any],
) -> None:
    # What Swagger UI's "Try it out" sends: the documented path, relative to the page.
    gateway = gateway_over_both
    resp = await gateway.get("/users/1", headers=KEY)
    assert (await resp.json())["name"] == "Ada Lovelace"
    resp = await gateway.post("/orders", json={"user_id": 1, "item": "Loom"}, headers=KEY)
    assert resp.status == 201
    assert resp.headers["Location"] == f"/orders/{(await resp.json())['order_id']}"
    resp = await gateway.post("/orders", json={"item": 5}, headers=KEY)
    assert resp.status == 400
    assert [e["field"] for e in (await resp.json())["errors"]] == ["body.user_id"]


async def test_a_backend_down_at_start_up_is_merged_once_it_answers(
    make_gateway: GatewayFactory,
    make_users: ServiceFactory,
    aiohttp_server: ServerFactory,
    tmp_path: Path,
) -> None:
    from order_service import create_app

    users = await make_users(tmp_path / "users.db")
    orders_port = free_port()
    gateway = await make_gateway(
        make_settings({"/users": [url_of(users)], "/orders": [f"http://127.0.0.1:{orders_port}"]})
    )
    spec = await wait_for_paths(gateway, {"/users", "/users/{user_id}"})
    assert "/orders" not in spec["paths"]
    assert "Still waiting for the API description of `/orders`" in spec["info"]["description"]
    validate(spec)
    # The route itself works meanwhile: the proxy does not wait for documents.
    resp = await gateway.get("/users/1", headers=KEY)
    assert resp.status == 200

    app = await create_app(make_service_settings(), tmp_path / "orders.db")
    await aiohttp_server(app, port=orders_port)
    spec = await wait_for_paths(gateway, ALL_PATHS)
    assert "Still waiting" not in spec["info"]["description"]
    validate(spec)


class FakeBackend:
    """Serves scripted answers at /docs/swagger.json and records the headers it was sent."""

    def __init__(self, answers: list[web.StreamResponse]) -> None:
        self.answers = answers
        self.seen: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(dict(request.headers))
        return self.answers[min(len(self.seen), len(self.answers)) - 1]


def backend_document(path: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "fake", "version": "1"},
        "paths": {path: {"get": {"responses": {"200": {"description": "ok"}}}}},
    }


async def start_fake(aiohttp_server: ServerFactory, fake: FakeBackend) -> str:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    return url_of(await aiohttp_server(app))


async def test_the_fetch_carries_the_secret_and_no_client_credentials(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    fake = FakeBackend([web.json_response(backend_document("/users/x"))])
    base = await start_fake(aiohttp_server, fake)
    gateway = await make_gateway(make_settings({"/users": [base]}))
    await wait_for_paths(gateway, {"/users/x"})
    (headers,) = fake.seen
    assert headers["x-gateway-secret"] == TEST_SECRET
    assert "x-api-key" not in {k.lower() for k in headers}


async def test_unusable_answers_are_retried_until_a_document_arrives(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeBackend(
        [
            web.Response(status=503),
            web.Response(text="<html>not json</html>"),
            web.json_response({"openapi": "3.1.0", "paths": {}}),
            web.json_response(backend_document("/users/x")),
        ]
    )
    base = await start_fake(aiohttp_server, fake)
    gateway = await make_gateway(make_settings({"/users": [base]}))
    with caplog.at_level(logging.DEBUG, logger="apigw.docs"):
        await wait_for_paths(gateway, {"/users/x"})
    assert len(fake.seen) == 4
    assert "HTTP 503" in caplog.text
    assert TEST_SECRET not in caplog.text


async def test_a_redirect_is_never_followed_with_the_secret(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    elsewhere = FakeBackend([web.json_response(backend_document("/users/stolen"))])
    elsewhere_url = await start_fake(aiohttp_server, elsewhere)
    redirecting = FakeBackend(
        [web.Response(status=302, headers={"Location": elsewhere_url + "/docs/swagger.json"})]
    )
    base = await start_fake(aiohttp_server, redirecting)
    gateway = await make_gateway(make_settings({"/users": [base]}))

    await eventually(lambda: len(redirecting.seen) >= 2, "a second attempt")
    assert elsewhere.seen == []
    assert (await spec_of(gateway))["paths"] == {}


def test_merged_names_do_not_depend_on_which_backend_answered_first() -> None:
    def clashing(path: str, kind: str) -> dict[str, Any]:
        doc = backend_document(path)
        doc["components"] = {"schemas": {"Thing": {"type": kind}}}
        return doc

    routes = (Route("/users", ("http://u",)), Route("/orders", ("http://o",)))
    results: list[dict[str, Any]] = []
    for order in (("/users", "/orders"), ("/orders", "/users")):
        spec: dict[str, Any] = {"info": {}, "components": gateway_components(), "paths": {}}
        publisher = DocsPublisher(spec, routes)
        assert publisher.pending == ("/users", "/orders")
        for prefix in order:
            kind = "string" if prefix == "/users" else "integer"
            publisher.add(prefix, clashing(prefix + "/x", kind))
        assert not publisher.pending
        results.append(copy.deepcopy(spec))
    assert results[0] == results[1]
    assert results[0]["components"]["schemas"]["orders_Thing"] == {"type": "integer"}


async def test_routes_sharing_upstreams_share_one_document_fetch(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    document = backend_document("/r0/x")
    document["paths"].update({f"/r{n}/x": document["paths"]["/r0/x"] for n in range(1, 300)})
    fake = FakeBackend([web.json_response(document)])
    base = await start_fake(aiohttp_server, fake)
    gateway = await make_gateway(make_settings({f"/r{n}": [base] for n in range(300)}))
    spec = await wait_for_paths(gateway, {f"/r{n}/x" for n in range(300)})
    assert len(fake.seen) == 1
    assert "Still waiting" not in spec["info"]["description"]


async def test_document_fetches_run_a_few_at_a_time(
    make_gateway: GatewayFactory, aiohttp_server: ServerFactory
) -> None:
    # Twelve backends (distinct base paths on one server), each holding its answer until the
    # test lets it go, one at a time: never more than MAX_CONCURRENT_FETCHES are asked at once.
    backends = 12
    held: list[asyncio.Future[None]] = []
    most = 0

    async def hold(request: web.Request) -> web.Response:
        nonlocal most
        answer = asyncio.get_running_loop().create_future()
        held.append(answer)
        most = max(most, len(held))
        await answer
        return web.json_response(backend_document(f"/{request.match_info['name']}/x"))

    app = web.Application()
    app.router.add_get("/{name}/docs/swagger.json", hold)
    base = url_of(await aiohttp_server(app))
    gateway = await make_gateway(
        make_settings({f"/b{n}": [f"{base}/b{n}"] for n in range(backends)})
    )
    for answered in range(backends):
        expected = min(MAX_CONCURRENT_FETCHES, backends - answered)

        def slots_full(expected: int = expected) -> bool:
            return len(held) == expected

        await eventually(slots_full, f"{expected} fetches under way")
        held.pop(0).set_result(None)
    await wait_for_paths(gateway, {f"/b{n}/x" for n in range(backends)})
    assert most == MAX_CONCURRENT_FETCHES
