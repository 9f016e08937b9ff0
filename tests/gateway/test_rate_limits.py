"""Plans over HTTP with the local store: 429 and 403 as problem+json, the RateLimit fields as
Structured Fields, the plan sent to the backend, rotation and reload keeping the counters."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import http_sf
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from apigw.config import load_gateway_settings
from apigw.config.consumers import digest_of
from apigw.ratelimit.policies import QUOTA_EXCEEDED, REDUCED_CAPACITY
from apigw.shared.appkeys import RELOADER_KEY
from tests.gateway.test_observability import scrape, value
from tests.support import DEMO_KEY, OTHER_KEY, TEST_SECRET
from tests.support.apps import GatewayFactory, make_settings, problem
from tests.support.upstream import Upstream

ROTATED_KEY = "gw_rotated-key-of-demo-0123456789"
FREE = {
    "rate": {"limit": 1, "per": "30s", "burst": 2},
    "quotas": [{"name": "daily", "limit": 1000, "per": "day"}],
}


def consumers(demo: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return [
        {"name": "demo", "key_sha256": digest_of(DEMO_KEY.encode()).hex(), **(demo or {})},
        {"name": "other", "key_sha256": digest_of(OTHER_KEY.encode()).hex(), "plan": "free"},
    ]


def settings_for(
    echo: Upstream,
    *,
    demo: dict[str, Any] | None = None,
    plans: dict[str, Any] | None = None,
    orders: dict[str, Any] | None = None,
) -> Any:
    return make_settings(
        {"/users": [echo.url], "/orders": [echo.url]},
        extra={
            "plans": plans or {"free": FREE},
            "consumers": consumers({"plan": "free", **(demo or {})}),
        },
        route_extra={"/orders": orders or {}},
    )


def sf_list(value: str) -> list[tuple[str, dict[str, Any]]]:
    """A RateLimit or RateLimit-Policy value, parsed as an RFC 9651 List of String items with
    parameters (http_sf raises on anything else)."""
    parsed = http_sf.parse(value.encode(), tltype="list")
    assert isinstance(parsed, list)
    items = []
    for member in parsed:
        assert isinstance(member, tuple)
        name, params = member
        assert isinstance(name, str)
        assert isinstance(params, dict)
        items.append((name, dict(params)))
    return items


async def test_over_the_rate_is_429_quota_exceeded_and_nothing_reaches_the_upstream(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    gateway = await make_gateway(settings_for(echo_upstream))
    for _ in range(2):
        assert (await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})).status == 200
    resp = await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})
    body = await problem(resp, 429)
    assert body["type"] == QUOTA_EXCEEDED
    assert body["violated-policies"] == ["burst"]
    # One request every 30 s, the burst spent at once: the next one in 30 s, never earlier.
    assert resp.headers["Retry-After"] == "30"
    assert sf_list(resp.headers["RateLimit"]) == [("burst", {"r": 0, "t": 30})]
    assert len(echo_upstream.seen) == 2
    # Counted by the observability of issue 10 as a rejection of the route.
    found = await scrape(gateway)
    assert value(found, "gateway_rejections_total", route="/users", reason="rate_limited") == 1


async def test_every_answer_to_a_limited_consumer_carries_the_fields_as_structured_fields(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    gateway = await make_gateway(settings_for(echo_upstream))
    resp = await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})
    assert resp.status == 200
    assert sf_list(resp.headers["RateLimit-Policy"]) == [
        ("burst", {"q": 2, "w": 60}),
        ("daily", {"q": 1000, "w": 86400}),
    ]
    # The policy closest to running out: one request of the burst is left.
    assert sf_list(resp.headers["RateLimit"]) == [("burst", {"r": 1, "t": 30})]
    # An error after the count (here a 404 from the upstream is a normal answer; a 502 is
    # the gateway's) carries them too.
    await echo_upstream.server.close()  # type: ignore[union-attr]
    resp = await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})
    await problem(resp, 502)
    assert sf_list(resp.headers["RateLimit"]) == [("burst", {"r": 0, "t": 30})]


async def test_the_upstreams_own_ratelimit_fields_are_kept_beside_the_gateways(
    make_gateway: GatewayFactory, aiohttp_server: Any
) -> None:
    async def limited(request: web.Request) -> web.Response:
        return web.Response(
            text="ok",
            headers={
                "RateLimit-Policy": '"backend";q=100;w=60',
                "RateLimit": '"backend";r=7;t=12',
            },
        )

    app = web.Application()
    app.router.add_get("/users/1", limited)
    server: TestServer = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    settings = make_settings(
        {"/users": [url]},
        extra={"plans": {"free": FREE}, "consumers": consumers({"plan": "free"})[:1]},
    )
    gateway = await make_gateway(settings)
    resp = await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})
    assert resp.status == 200
    # A list may be split over several field lines; a client joins them with commas.
    policies = sf_list(", ".join(resp.headers.getall("RateLimit-Policy")))
    current = sf_list(", ".join(resp.headers.getall("RateLimit")))
    assert ("backend", {"q": 100, "w": 60}) in policies
    assert ("burst", {"q": 2, "w": 60}) in policies
    assert current == [("backend", {"r": 7, "t": 12}), ("burst", {"r": 1, "t": 30})]


async def test_a_route_outside_the_allow_list_is_403_and_charges_nothing(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    gateway = await make_gateway(settings_for(echo_upstream, demo={"routes": ["/users"]}))
    for _ in range(3):
        resp = await gateway.get("/orders/1", headers={"x-api-key": DEMO_KEY})
        body = await problem(resp, 403)
        assert "route" in body["detail"]
        assert "RateLimit" not in resp.headers
    assert echo_upstream.seen == []
    resp = await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})
    assert resp.status == 200
    assert sf_list(resp.headers["RateLimit"]) == [("burst", {"r": 1, "t": 30})]


async def test_the_backend_learns_the_plan_and_a_client_cannot_forge_it(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    gateway = await make_gateway(settings_for(echo_upstream, plans={"free": {}}))
    resp = await gateway.get(
        "/users/1",
        headers={"x-api-key": DEMO_KEY, "X-Consumer-Plan": "gold", "X-Consumer-Name": "x"},
    )
    assert resp.status == 200
    seen = echo_upstream.seen[-1].headers
    assert seen.getall("X-Consumer-Plan") == ["free"]
    assert seen.getall("X-Consumer-Name") == ["demo"]
    # An unlimited plan counts nothing and announces nothing.
    assert "RateLimit" not in resp.headers
    assert "RateLimit-Policy" not in resp.headers


async def test_a_route_rate_is_shared_by_every_consumer_of_the_route(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    settings = settings_for(
        echo_upstream,
        plans={"free": {}},
        orders={"rate": {"limit": 1, "per": "1m", "burst": 3}},
    )
    gateway = await make_gateway(settings)
    for key in (DEMO_KEY, OTHER_KEY, DEMO_KEY):
        assert (await gateway.get("/orders/1", headers={"x-api-key": key})).status == 200
    body = await problem(await gateway.get("/orders/1", headers={"x-api-key": OTHER_KEY}), 429)
    assert body["violated-policies"] == ["route"]
    # Other routes are not limited by it.
    assert (await gateway.get("/users/1", headers={"x-api-key": OTHER_KEY})).status == 200


async def test_key_rotation_keeps_one_set_of_counters(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    keys = [digest_of(k.encode()).hex() for k in (DEMO_KEY, ROTATED_KEY)]
    demo = {"keys_sha256": keys}
    settings = make_settings(
        {"/users": [echo_upstream.url]},
        extra={
            "plans": {"free": FREE},
            "consumers": [{"name": "demo", "plan": "free", **demo}],
        },
    )
    gateway = await make_gateway(settings)
    assert (await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})).status == 200
    assert (await gateway.get("/users/1", headers={"x-api-key": ROTATED_KEY})).status == 200
    await problem(await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY}), 429)
    await problem(await gateway.get("/users/1", headers={"x-api-key": ROTATED_KEY}), 429)
    assert {s.headers["X-Consumer-Name"] for s in echo_upstream.seen} == {"demo"}


async def test_a_reload_keeps_the_counters_and_a_changed_plan_applies_at_once(
    make_gateway: GatewayFactory, echo_upstream: Upstream, tmp_path: Path
) -> None:
    def write(burst: int) -> Path:
        document = {
            "routes": [{"prefix": "/users", "upstreams": [echo_upstream.url]}],
            "plans": {"free": {"rate": {"limit": 1, "per": "1m", "burst": burst}}},
            "consumers": consumers({"plan": "free"}),
        }
        path = tmp_path / "gateway.yaml"
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

    path = write(burst=3)
    gateway = await make_gateway(load_gateway_settings(path, {"GATEWAY_SECRET": TEST_SECRET}))
    for left in (2, 1):
        resp = await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})
        assert sf_list(resp.headers["RateLimit"]) == [("burst", {"r": left, "t": 60})]
    write(burst=5)
    assert await gateway.app[RELOADER_KEY].reload()
    resp = await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})
    # Two requests were counted before the reload: 5 - 3 are left, not 5 - 1.
    assert sf_list(resp.headers["RateLimit"]) == [("burst", {"r": 2, "t": 60})]
    assert sf_list(resp.headers["RateLimit-Policy"]) == [("burst", {"q": 5, "w": 300})]


async def test_divide_by_workers_gives_each_worker_its_share(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    settings = settings_for(
        echo_upstream,
        plans={"free": {"rate": {"limit": 10, "per": "1s", "burst": 10}}},
    )
    limits = replace(settings.rate_limits, divide_by_workers=True, workers=4)
    gateway = await make_gateway(replace(settings, rate_limits=limits))
    resp = await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})
    # 10/s with a burst of 10 over 4 workers: 2.5/s and a burst of 2 each.
    assert sf_list(resp.headers["RateLimit-Policy"]) == [("burst", {"q": 2, "w": 1})]
    assert (await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})).status == 200
    await problem(await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY}), 429)


async def test_a_redis_that_never_answers_costs_one_short_timeout_and_never_a_500(
    make_gateway: GatewayFactory,
    echo_upstream: Upstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A black hole (accepts, never replies): each call gives up after redis_timeout, the
    breaker opens, `deny` answers 503; the password in the URL appears nowhere."""
    accepted: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    hole = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = hole.sockets[0].getsockname()[1]
    password = "black-hole-password-42"
    settings = settings_for(echo_upstream)
    limits = replace(
        settings.rate_limits,
        store="redis",
        redis_url=f"redis://:{password}@127.0.0.1:{port}/0",
        on_store_error="deny",
        redis_timeout=0.05,
    )
    try:
        gateway = await make_gateway(replace(settings, rate_limits=limits))
        for _ in range(6):
            started = time.monotonic()
            resp = await gateway.get("/users/1", headers={"x-api-key": DEMO_KEY})
            # Not a speed target: with redis-py's defaults this would take 5 s x 11 tries.
            assert time.monotonic() - started < 3.0
            body = await problem(resp, 503)
            assert body["type"] == REDUCED_CAPACITY
            assert int(resp.headers["Retry-After"]) >= 1
        found = await scrape(gateway)
        assert value(found, "gateway_ratelimit_store_up") == 0
    finally:
        hole.close()
        for writer in accepted:
            writer.close()
        await hole.wait_closed()
    assert echo_upstream.seen == []
    lines = [r.getMessage() for r in caplog.records if r.name == "apigw.ratelimit"]
    assert len(lines) == 1
    assert "unreachable (TimeoutError)" in lines[0]
    assert password not in caplog.text
