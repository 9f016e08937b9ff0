"""The hostile-input suite's gateway: small, known limits, and every byte it sent kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apigw.config import GatewaySettings
from tests.support import DEMO_KEY, OTHER_KEY, TEST_SECRET
from tests.support.apps import make_settings
from tests.support.upstream import Upstream
from tests.support.wire import Exchange, exchange

# Small limits, so that "exactly at" and "one over" are cheap to build.
LIMITS: dict[str, Any] = {
    "max_request_line": 1024,
    "max_header_field": 512,
    "max_header_bytes": 4096,
    "max_headers": 20,
    "idle_timeout": 1.0,
    "lingering_time": 0.2,
}
USERS_MAX_BODY = 1000
BODY_IDLE = 0.5
NEEDLES = (DEMO_KEY, OTHER_KEY, TEST_SECRET)


def hostile_settings(upstream: Upstream, **limits: Any) -> GatewaySettings:
    return make_settings(
        {"/users": [upstream.url], "/orders": [upstream.url]},
        extra={
            "limits": {**LIMITS, **limits},
            "timeouts": {"body_idle": BODY_IDLE},
            "max_body_bytes": None,
        },
        # /orders keeps WebSockets off: there an Upgrade is stripped like any hop-by-hop header.
        route_extra={
            "/users": {"max_body_bytes": USERS_MAX_BODY},
            "/orders": {"websocket": {"enabled": False}},
        },
    )


@dataclass
class Gateway:
    """A running gateway; what `send` received goes into the transcript the leak guard reads."""

    port: int
    upstream: Upstream
    transcript: list[bytes]

    async def send(self, *parts: bytes, **options: Any) -> Exchange:
        result = await exchange(self.port, *parts, **options)
        self.transcript.append(result.raw)
        return result
