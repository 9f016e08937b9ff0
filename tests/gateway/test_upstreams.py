"""Several targets per route: balancing, passive and active health, retries, all-down 503."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from apigw.config import Health, Route
from apigw.upstreams import UpstreamPool
from tests.support import KEY, PROBLEM, TEST_SECRET, free_port
from tests.support.apps import GatewayFactory, make_settings
from tests.support.upstream import UpstreamFactory
from tests.support.wait import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr("apigw.upstreams.monotonic", fake)
    return fake


def make_pool(n: int, balance: str = "round_robin", **health: Any) -> UpstreamPool:
    ups = tuple(f"http://127.0.0.1:{9100 + i}" for i in range(n))
    return UpstreamPool(Route(prefix="/x", upstreams=ups, balance=balance, health=Health(**health)))


def names(pool: UpstreamPool, picks: int) -> list[str]:
    out = []
    for _ in range(picks):
        target = pool.pick()
        out.append(target.base[-1] if target is not None else "-")
    return out


def test_round_robin_cycles_through_targets() -> None:
    assert names(make_pool(3), 6) == ["0", "1", "2", "0", "1", "2"]


def test_least_outstanding_picks_the_idlest_and_rotates_ties() -> None:
    pool = make_pool(3, "least_outstanding")
    assert names(pool, 3) == ["0", "1", "2"]
    pool.targets[0].in_flight = 2
    pool.targets[1].in_flight = 1
    assert names(pool, 3) == ["2", "2", "2"]


def test_target_is_ejected_after_max_failures_in_a_row(clock: Clock) -> None:
    pool = make_pool(2, max_failures=2, eject_seconds=5)
    a = pool.targets[0]
    pool.failed(a)
    pool.succeeded(a)  # a success in between starts the count again
    pool.failed(a)
    assert a.available
    pool.failed(a)
    assert not a.available
    assert names(pool, 3) == ["1", "1", "1"]
    assert pool.ready()
    assert pool.retry_after() == 5


def test_ejected_target_gets_a_single_trial_then_comes_back(clock: Clock) -> None:
    pool = make_pool(2, max_failures=1, eject_seconds=5)
    a = pool.targets[0]
    pool.failed(a)
    clock.now += 4.9
    assert names(pool, 2) == ["1", "1"]
    clock.now += 0.2
    trial = pool.pick()
    assert trial is a
    # While the trial is under way, nothing else goes to a.
    assert names(pool, 3) == ["1", "1", "1"]
    pool.succeeded(a)
    assert a.available
    assert sorted(names(pool, 4)) == ["0", "0", "1", "1"]


def test_failed_trial_ejects_again(clock: Clock) -> None:
    pool = make_pool(1, max_failures=1, eject_seconds=5)
    a = pool.targets[0]
    pool.failed(a)
    assert pool.pick() is None
    assert not pool.ready()
    clock.now += 5
    assert pool.ready()
    assert pool.pick() is a
    assert not pool.ready()  # its one trial is out
    pool.failed(a)
    assert pool.pick() is None
    assert pool.retry_after() == 5
    clock.now += 5
    assert pool.pick() is a


def test_trial_that_ended_for_another_reason_can_be_tried_again(clock: Clock) -> None:
    pool = make_pool(1, max_failures=1, eject_seconds=1)
    a = pool.targets[0]
    pool.failed(a)
    clock.now += 1
    assert pool.pick() is a
    pool.released(a)  # e.g. the client's body timed out: says nothing about a
    assert pool.pick() is a


def test_checked_down_targets_take_no_requests(clock: Clock) -> None:
    pool = make_pool(2, check_interval=3)
    pool.checked(pool.targets[0], False)
    assert names(pool, 3) == ["1", "1", "1"]
    pool.checked(pool.targets[1], False)
    assert pool.pick() is None
    assert not pool.ready()
    assert pool.retry_after() == 3
    pool.checked(pool.targets[0], True)
    assert names(pool, 2) == ["0", "0"]


def test_a_retry_goes_to_an_untried_target_or_to_the_only_one() -> None:
    pool = make_pool(3)
    first = pool.targets[0]
    assert pool.pick_retry([first]) in pool.targets[1:]
    assert pool.pick_retry(list(pool.targets)) is None
    single = make_pool(1)
    assert single.pick_retry([single.targets[0]]) is single.targets[0]


async def test_requests_spread_round_robin_over_three_targets(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    echoes = [await make_upstream() for _ in range(3)]
    client = await make_gateway(make_settings({"/users": [e.url for e in echoes]}))
    for _ in range(9):
        assert (await client.get("/users/1", headers=KEY)).status == 200
    assert [len(e.seen) for e in echoes] == [3, 3, 3]


async def test_least_outstanding_sends_new_requests_to_the_idle_target(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    a, b = await make_upstream("a"), await make_upstream("b")
    settings = make_settings(
        {"/users": [a.url, b.url]}, route_extra={"/users": {"balance": "least_outstanding"}}
    )
    client = await make_gateway(settings)
    held = asyncio.create_task(client.get("/users/hold", headers=KEY))
    await eventually(lambda: a.held + b.held, "the held request to arrive")
    busy, idle = (a, b) if a.held else (b, a)
    for _ in range(4):
        resp = await client.get("/users/1", headers=KEY)
        assert (await resp.json())["backend"] == idle.name
    busy.release.set()
    assert (await held).status == 200


@pytest.mark.parametrize(
    ("method", "body"),
    [("GET", None), ("DELETE", None), ("POST", b"p" * 300_000), ("PATCH", b"{}"), ("PUT", b"1")],
    ids=["get", "delete", "post-body", "patch-body", "put-body"],
)
async def test_refused_connection_is_retried_on_another_target_for_every_method(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory, method: str, body: bytes | None
) -> None:
    echo = await make_upstream()
    dead = f"http://127.0.0.1:{free_port()}"
    client = await make_gateway(make_settings({"/users": [dead, echo.url]}))
    for _ in range(2):
        resp = await client.request(method, "/users/1", data=body, headers=KEY)
        assert resp.status == 200
    # Whichever target each request tried first, the echo got both bodies whole.
    assert len(echo.seen) == 2
    expected = hashlib.sha256(body or b"").hexdigest()
    assert {hashlib.sha256(s.body).hexdigest() for s in echo.seen} == {expected}


async def test_no_retry_when_retries_is_zero(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    echo = await make_upstream()
    dead = f"http://127.0.0.1:{free_port()}"
    client = await make_gateway(
        make_settings({"/users": [dead, echo.url]}, route_extra={"/users": {"retries": 0}})
    )
    statuses = sorted([(await client.get("/users/1", headers=KEY)).status for _ in range(2)])
    assert statuses == [200, 502]


async def test_every_target_down_gives_503_with_retry_after(
    make_gateway: GatewayFactory,
) -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    settings = make_settings(
        {"/users": dead}, extra={"health": {"max_failures": 1, "eject_seconds": 30}}
    )
    client = await make_gateway(settings)
    first = await client.get("/users/1", headers=KEY)
    assert first.status == 502  # tried both, and both are now ejected
    resp = await client.get("/users/1", headers=KEY)
    assert resp.status == 503
    assert resp.content_type == PROBLEM
    assert 29 <= int(resp.headers["Retry-After"]) <= 30
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["routes_down"] == ["/users"]


@pytest.mark.parametrize("fail_on_5xx", [True, False], ids=["counted", "not-counted"])
async def test_5xx_answers_eject_only_when_configured(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory, fail_on_5xx: bool
) -> None:
    echo = await make_upstream()
    health = {"max_failures": 2, "eject_seconds": 30, "fail_on_5xx": fail_on_5xx}
    client = await make_gateway(make_settings({"/users": [echo.url]}, extra={"health": health}))
    statuses = [(await client.get("/users/status-500", headers=KEY)).status for _ in range(3)]
    assert statuses == ([500, 500, 503] if fail_on_5xx else [500, 500, 500])


async def test_read_timeout_on_get_is_retried_elsewhere_but_not_on_post(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    a, b = await make_upstream("a"), await make_upstream("b")
    settings = make_settings({"/users": [a.url, b.url]}, extra={"timeouts": {"read": 0.3}})
    client = await make_gateway(settings)
    # /hold/ hangs on both; only the 504s and retries tell the story.
    a.release.set()  # a answers, b hangs
    for _ in range(2):
        resp = await client.get("/users/hold", headers=KEY)
        assert resp.status == 200
        assert (await resp.json())["backend"] == "a"
    statuses = sorted(
        [(await client.post("/users/hold", data=b"x", headers=KEY)).status for _ in range(2)]
    )
    assert statuses == [200, 504]
    b.release.set()


async def test_active_checks_take_a_target_out_and_back(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    a, b = await make_upstream("a"), await make_upstream("b")
    health = {"check_interval": 0.05, "check_timeout": 1}
    client = await make_gateway(make_settings({"/users": [a.url, b.url]}, extra={"health": health}))
    a.health_status = 503

    async def served_by(expected: set[str]) -> bool:
        answers = [await (await client.get("/users/1", headers=KEY)).json() for _ in range(4)]
        return {answer.get("backend", "none") for answer in answers} == expected

    async def not_ready() -> bool:
        return (await client.get("/readyz")).status == 503

    await eventually(lambda: served_by({"b"}), "a to be taken out", timeout=5)
    b.health_status = 503
    await eventually(not_ready, "/readyz to fail", timeout=5)
    a.health_status = b.health_status = 200
    await eventually(lambda: served_by({"a", "b"}), "a to come back", timeout=5)
    assert a.health_headers[0]["x-gateway-secret"] == TEST_SECRET
