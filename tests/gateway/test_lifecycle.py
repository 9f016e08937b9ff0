"""/healthz and /readyz, draining, and config reload in one process (signals: system/)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from apigw.config import load_gateway_settings
from apigw.config.consumers import digest_of
from apigw.lifecycle import begin_drain
from apigw.shared.appkeys import RELOADER_KEY
from tests.support import DEMO_KEY, KEY, OTHER_KEY, PROBLEM, TEST_SECRET
from tests.support.apps import GatewayFactory, make_settings
from tests.support.upstream import UpstreamFactory
from tests.support.wait import eventually


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
async def test_probes_need_no_key(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory, path: str
) -> None:
    a = await make_upstream("a")
    client = await make_gateway(make_settings({"/users": [a.url]}))
    resp = await client.get(path)
    assert resp.status == 200
    assert a.requests == 0


async def test_readyz_fails_while_draining(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    a = await make_upstream("a")
    client = await make_gateway(make_settings({"/users": [a.url]}))
    begin_drain(client.app)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert resp.content_type == PROBLEM
    # Requests are still served, but every answer tells a keep-alive client to reconnect (to
    # a live process), so none is left to race the close of its idle connection.
    proxied = await client.get("/users/1", headers=KEY)
    own = await client.get("/users/1")
    assert (proxied.status, own.status) == (200, 401)
    for resp in (proxied, own):
        assert resp.headers.get("Connection") == "close", (resp.status, dict(resp.headers))


def write_config(path: Path, upstream: str, consumers: dict[str, str]) -> None:
    document = {
        "routes": [{"prefix": "/users", "upstreams": [upstream]}],
        "consumers": [
            {"name": name, "key_sha256": digest_of(key.encode()).hex()}
            for name, key in consumers.items()
        ],
    }
    path.write_text(yaml.safe_dump(document))


async def test_reload_swaps_routes_and_keys_for_new_requests_while_old_ones_finish(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory, tmp_path: Path
) -> None:
    old, new = await make_upstream("old"), await make_upstream("new")
    config = tmp_path / "gateway.yaml"
    write_config(config, old.url, {"demo": DEMO_KEY})
    settings = load_gateway_settings(config, {"GATEWAY_SECRET": TEST_SECRET})
    client = await make_gateway(settings)
    in_flight = asyncio.create_task(client.get("/users/hold", headers=KEY))
    await eventually(lambda: old.held, "the old target to hold a request")

    write_config(config, new.url, {"other": OTHER_KEY})
    assert await client.app[RELOADER_KEY].reload()

    assert (await client.get("/users/1", headers=KEY)).status == 401
    resp = await client.get("/users/1", headers={"x-api-key": OTHER_KEY})
    assert (await resp.json())["backend"] == "new"
    old.release.set()
    finished = await in_flight
    assert finished.status == 200
    assert (await finished.json())["backend"] == "old"


async def test_bad_config_reload_keeps_the_running_one_and_logs_one_line(
    make_gateway: GatewayFactory,
    make_upstream: UpstreamFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = await make_upstream("a")
    config = tmp_path / "gateway.yaml"
    write_config(config, a.url, {"demo": DEMO_KEY})
    client = await make_gateway(load_gateway_settings(config, {"GATEWAY_SECRET": TEST_SECRET}))
    document: dict[str, Any] = yaml.safe_load(config.read_text())
    document["routes"][0]["upstreams"] = ["ftp://nowhere"]
    config.write_text(yaml.safe_dump(document))
    with caplog.at_level(logging.INFO, logger="apigw.reload"):
        assert not await client.app[RELOADER_KEY].reload()
    errors = [r for r in caplog.records if r.name == "apigw.reload"]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "\n" not in message
    assert "routes[0].upstreams[0]" in message
    assert "keeping the running config" in message
    assert (await client.get("/users/1", headers=KEY)).status == 200


async def test_reload_of_a_gateway_built_without_a_file_is_skipped(
    make_gateway: GatewayFactory, make_upstream: UpstreamFactory
) -> None:
    a = await make_upstream("a")
    client = await make_gateway(make_settings({"/users": [a.url]}))
    assert not await client.app[RELOADER_KEY].reload()
