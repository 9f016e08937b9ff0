"""Header hygiene: what reaches the backend, and what comes back to the client."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.support import KEY, TEST_SECRET
from tests.support.upstream import Upstream
from tests.support.wire import exchange, request


@pytest.mark.parametrize(
    ("sent", "absent_upstream"),
    [
        ({"Connection": "x-gateway-secret"}, []),
        ({"Connection": "X-Consumer-Name, x-request-id"}, []),
        ({"Connection": "x-private", "X-Private": "p"}, ["x-private"]),
        ({"Keep-Alive": "timeout=5"}, ["keep-alive"]),
        ({"TE": "trailers"}, ["te"]),
        ({"Trailer": "x-sum"}, ["trailer"]),
        ({"Upgrade": "websocket"}, ["upgrade"]),
        ({"Proxy-Authorization": "Basic abc"}, ["proxy-authorization"]),
        ({"Proxy-Connection": "keep-alive"}, ["proxy-connection"]),
        ({"X-Gateway-Secret": "forged-secret-value-123"}, []),
        ({"X-Consumer-Name": "admin"}, []),
        ({"X-Forwarded-For": "6.6.6.6"}, []),
        ({"X-Forwarded-Host": "evil.test"}, []),
        ({"Forwarded": "for=6.6.6.6"}, ["forwarded"]),
    ],
    ids=[
        "connection-names-secret",
        "connection-names-gateway-headers",
        "connection-names-private",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "forged-secret",
        "forged-consumer",
        "forged-xff",
        "forged-xfh",
        "forwarded",
    ],
)
async def test_client_cannot_remove_or_forge_gateway_headers(
    gateway: TestClient[Any, Any],
    echo_upstream: Upstream,
    sent: dict[str, str],
    absent_upstream: list[str],
) -> None:
    resp = await gateway.get("/users/1", headers={**KEY, **sent})
    assert resp.status == 200
    (seen,) = echo_upstream.seen
    assert seen.headers.getall("x-gateway-secret") == [TEST_SECRET]
    assert seen.headers.getall("x-consumer-name") == ["demo"]
    assert seen.headers.getall("x-forwarded-for") == ["127.0.0.1"]
    assert seen.headers.getall("x-request-id") == [resp.headers["X-Request-ID"]]
    for name in absent_upstream:
        assert name not in seen.headers


async def test_forwarded_headers_and_host(
    gateway: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    assert gateway.port is not None
    await exchange(gateway.port, request("/users/1", "X-Custom: kept"))
    (seen,) = echo_upstream.seen
    assert seen.headers["X-Forwarded-Proto"] == "http"
    assert seen.headers["X-Forwarded-Host"] == "gw.test"
    assert seen.headers["Host"] == echo_upstream.url.removeprefix("http://")
    assert seen.headers["X-Custom"] == "kept"
    # The session adds nothing of its own: no Accept-Encoding the client did not ask for.
    assert "Accept-Encoding" not in seen.headers
    assert "User-Agent" not in seen.headers


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("A" * 128, True),
        ("trace:1.2_3-x", True),
        ("A" * 129, False),
        ("", False),
        ("has space", False),
        ("semi;colon", False),
        ("new\\nline", False),
    ],
)
async def test_request_id_is_kept_only_when_sane(
    gateway: TestClient[Any, Any], echo_upstream: Upstream, sent: str, kept: bool
) -> None:
    resp = await gateway.get("/users/1", headers={**KEY, "X-Request-ID": sent})
    rid = resp.headers["X-Request-ID"]
    assert (rid == sent) is kept
    assert echo_upstream.seen[0].headers["X-Request-ID"] == rid
    if not kept:
        assert len(rid) == 32


async def test_request_id_on_errors_matches_body(gateway: TestClient[Any, Any]) -> None:
    resp = await gateway.get("/users/1", headers={"X-Request-ID": "mine-1"})
    assert resp.status == 401
    assert resp.headers["X-Request-ID"] == "mine-1"
    assert (await resp.json())["request_id"] == "mine-1"


async def test_response_status_reason_and_repeated_headers_come_back(
    gateway: TestClient[Any, Any],
) -> None:
    resp = await gateway.post("/users/cookies", headers=KEY)
    assert resp.status == 201
    assert resp.reason == "Made It"
    assert resp.headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert resp.headers["X-Custom"] == "kept"


async def test_upstream_hop_headers_and_secret_are_not_returned(
    gateway: TestClient[Any, Any],
) -> None:
    resp = await gateway.get("/users/hop", headers=KEY)
    assert resp.status == 200
    for name in ("X-Upstream-Private", "Keep-Alive", "X-Gateway-Secret", "Proxy-Authenticate"):
        assert name not in resp.headers
    assert "leaked" not in str(resp.headers)


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304, 400, 404, 409, 418, 500, 503])
async def test_backend_status_codes_are_preserved(
    gateway: TestClient[Any, Any], status: int
) -> None:
    resp = await gateway.get(f"/users/status-{status}", headers=KEY, allow_redirects=False)
    assert resp.status == status


async def test_redirects_are_returned_not_followed(
    gateway: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    resp = await gateway.get("/users/redirect", headers=KEY, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "http://127.0.0.1:1/elsewhere"
    assert len(echo_upstream.seen) == 1


async def test_compressed_body_passes_through_untouched(gateway: TestClient[Any, Any]) -> None:
    assert gateway.port is not None
    reply = (await exchange(gateway.port, request("/users/gzip", "Accept-Encoding: gzip"))).reply
    assert reply.headers["Content-Encoding"] == "gzip"
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    assert gzip.decompress(reply.body) == b"compressed payload"
