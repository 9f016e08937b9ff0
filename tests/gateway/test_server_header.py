"""Responses name no versions: every answer carries the configured Server header, never
aiohttp's `Python/x aiohttp/y`, and a backend's own Server header does not leak through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import DEMO_KEY, EchoUpstream, GatewayFactory, make_settings

KEY = {"x-api-key": DEMO_KEY}


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
    echo_upstream: EchoUpstream,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    client = await make_gateway(make_settings({"/users": [echo_upstream.url]}))
    resp = await client.get(path, headers=headers)
    assert resp.status == status
    assert resp.headers.getall("Server") == ["apigw"]


async def test_the_server_header_is_configurable(
    make_gateway: GatewayFactory, echo_upstream: EchoUpstream
) -> None:
    settings = make_settings({"/users": [echo_upstream.url]}, extra={"server_header": "edge"})
    client = await make_gateway(settings)
    for path, headers in (("/users/1", KEY), ("/users/1", {})):
        resp = await client.get(path, headers=headers)
        assert resp.headers.getall("Server") == ["edge"]


async def test_a_parse_error_answer_names_no_version(
    make_gateway: GatewayFactory, echo_upstream: EchoUpstream
) -> None:
    client: Any = await make_gateway(make_settings({"/users": [echo_upstream.url]}))
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(b"GET /users/1 HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
    await writer.drain()
    head = (await reader.read(65536)).split(b"\r\n\r\n", 1)[0].decode().lower()
    writer.close()
    assert head.startswith(("http/1.1 400", "http/1.0 400"))
    assert "\r\nserver: apigw\r\n" in head + "\r\n"
    assert "python" not in head and "aiohttp" not in head
