"""The hostile-input suite's fixtures: a gateway with small limits, and a leak guard.

Every test here runs with every log record captured and every byte the gateway sent kept;
after the test, none of them may contain a client key or the gateway secret.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support.apps import GatewayFactory
from tests.support.hostile import NEEDLES, Gateway, hostile_settings
from tests.support.upstream import Upstream


@pytest.fixture
def transcript() -> list[bytes]:
    return []


@pytest.fixture
async def gw(
    make_gateway: GatewayFactory, echo_upstream: Upstream, transcript: list[bytes]
) -> Gateway:
    client = await make_gateway(hostile_settings(echo_upstream))
    assert client.port is not None
    return Gateway(client.port, echo_upstream, transcript)


@pytest.fixture(autouse=True)
def no_key_or_secret_leaks(
    caplog: pytest.LogCaptureFixture, transcript: list[bytes]
) -> Iterator[None]:
    """Fails the test if any log record or any byte the gateway sent holds a key or the secret."""
    caplog.set_level(logging.DEBUG)
    yield
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        text = formatter.format(record)
        for needle in NEEDLES:
            assert needle not in text, f"log record of {record.name} leaks a credential"
    for raw in transcript:
        text = raw.decode("latin-1")
        for needle in NEEDLES:
            assert needle not in text, "a response leaks a credential"
