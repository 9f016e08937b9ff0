"""The client key: who gets through, who gets 401/400, what the backend then sees; minting."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from apigw.keys import Keyring
from apigw.keys import main as mint_main
from tests.support import DEMO_KEY, KEY, OTHER_KEY, PROBLEM, TEST_SECRET
from tests.support.apps import make_settings
from tests.support.upstream import Upstream


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([], 401),
        ([("x-api-key", "")], 401),
        ([("x-api-key", "wrong-key-0000000")], 401),
        ([("x-api-key", DEMO_KEY + "x")], 401),
        ([("x-api-key", DEMO_KEY.lower())], 401),
        ([("X-API-KEY", "clé-non-ascii")], 401),
        ([("x-api-key", DEMO_KEY), ("x-api-key", DEMO_KEY)], 400),
        ([("x-api-key", DEMO_KEY), ("x-api-key", "wrong")], 400),
        ([("x-gateway-secret", TEST_SECRET)], 401),
        ([("authorization", f"Bearer {DEMO_KEY}")], 401),
    ],
    ids=[
        "missing",
        "empty",
        "wrong",
        "longer",
        "wrong-case",
        "non-ascii",
        "duplicated",
        "duplicated-mixed",
        "secret-is-not-a-key",
        "bearer-is-not-a-key",
    ],
)
async def test_bad_client_key_is_refused_before_any_upstream_contact(
    gateway: TestClient[Any, Any],
    echo_upstream: Upstream,
    headers: list[tuple[str, str]],
    status: int,
) -> None:
    resp = await gateway.get("/users/1", headers=headers)
    assert resp.status == status
    assert resp.content_type == PROBLEM
    body = await resp.json()
    assert body["status"] == status
    assert body["request_id"] == resp.headers["X-Request-ID"]
    assert echo_upstream.seen == []


@pytest.mark.parametrize("key", [DEMO_KEY, OTHER_KEY], ids=["demo", "other"])
async def test_valid_key_reaches_backend_with_consumer_name_not_key(
    gateway: TestClient[Any, Any], echo_upstream: Upstream, key: str
) -> None:
    resp = await gateway.get("/users/1", headers={"x-api-key": key})
    assert resp.status == 200
    (seen,) = echo_upstream.seen
    assert "x-api-key" not in seen.headers
    assert key not in repr(seen.headers)
    assert seen.headers["x-consumer-name"] == ("demo" if key == DEMO_KEY else "other")
    assert seen.headers.getall("x-gateway-secret") == [TEST_SECRET]


async def test_unauthenticated_caller_cannot_map_routes(gateway: TestClient[Any, Any]) -> None:
    known = await gateway.get("/users/1")
    unknown = await gateway.get("/no-such-route")
    assert known.status == unknown.status == 401
    authed_unknown = await gateway.get("/no-such-route", headers=KEY)
    assert authed_unknown.status == 404
    assert authed_unknown.content_type == PROBLEM


async def test_error_bodies_never_echo_the_key_or_secret(gateway: TestClient[Any, Any]) -> None:
    for headers in ({"x-api-key": "almost-" + DEMO_KEY}, {"x-api-key": DEMO_KEY}):
        resp = await gateway.get("/nowhere/%2e%2e", headers=headers)
        text = await resp.text()
        assert DEMO_KEY not in text
        assert TEST_SECRET not in text
        assert DEMO_KEY not in str(resp.headers)
        assert TEST_SECRET not in str(resp.headers)


@pytest.mark.parametrize("path", ["/healthz", "/docs/", "/docs/swagger.json"])
async def test_open_paths_need_no_key(gateway: TestClient[Any, Any], path: str) -> None:
    resp = await gateway.get(path)
    assert resp.status == 200


def test_mint_prints_key_once_and_its_digest(capsys: pytest.CaptureFixture[str]) -> None:
    assert mint_main(["alice"]) == 0
    out = capsys.readouterr().out
    key = next(line.strip() for line in out.splitlines() if line.strip().startswith("gw_"))
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert out.count(key) == 1
    assert f"key_sha256: {digest}" in out
    assert "name: alice" in out
    consumers = [{"name": "alice", "key_sha256": digest}]
    settings = make_settings({"/users": ["http://127.0.0.1:9"]}, extra={"consumers": consumers})
    alice = Keyring(settings.consumers).consumer_for(key.encode())
    assert alice is not None
    assert alice.name == "alice"
