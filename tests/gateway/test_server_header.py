"""Responses name no versions: every answer carries the configured Server header, never
aiohttp's `Python/x aiohttp/y`, and a backend's own Server header does not leak through."""

from __future__ import annotations

import pytest

from tests.support import KEY
from tests.support.apps import GatewayFactory, make_settings
from tests.support.upstream import Upstream
from tests.support.wire import exchange, request


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/users/1", KEY, 200),  # proxied: the echo backend's aiohttp names its version
        ("/users/1", {}, 401),  # the gateway's own error
        ("/nowhere", KEY, 404),
        ("/healthz", {}, 200),
        ("/readyz", {}, 200),
        ("/docs/", {}, 200),
    ],
    ids=["proxied", "401", "404", "healthz", "readyz", "docs"],
)
async def test_every_answer_names_the_gateway_without_versions(
    make_gateway: GatewayFactory,
    echo_upstream: Upstream,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    client = await make_gateway(make_settings({"/users": [echo_upstream.url]}))
    resp = await client.get(path, headers=headers)
    assert resp.status == status
    assert resp.headers.getall("Server") == ["apigw"]


async def test_the_server_header_is_configurable(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    settings = make_settings({"/users": [echo_upstream.url]}, extra={"server_header": "edge"})
    client = await make_gateway(settings)
    for path, headers in (("/users/1", KEY), ("/users/1", {})):
        resp = await client.get(path, headers=headers)
        assert resp.headers.getall("Server") == ["edge"]


async def test_a_parse_error_answer_names_no_version(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    client = await make_gateway(make_settings({"/users": [echo_upstream.url]}))
    assert client.port is not None
    result = await exchange(client.port, request("/users/1", "Bad Header Line"))
    assert result.reply.status == 400
    assert result.reply.headers.getall("Server") == ["apigw"]
    head = result.raw.split(b"\r\n\r\n", 1)[0].lower()
    assert b"python" not in head and b"aiohttp" not in head
