"""Config keys for targets, health, retries, timeouts and shutdown: defaults, per-route
overrides, and one-line errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from apigw.config import ConfigError, Health, Shutdown, Timeouts, parse_gateway_settings
from tests.support import TEST_SECRET

ENV = {"GATEWAY_SECRET": TEST_SECRET}
UP = ["http://127.0.0.1:9001", "http://127.0.0.1:9002"]


def parse(route: dict[str, Any] | None = None, **top: Any) -> Any:
    document = {"routes": [{"prefix": "/users", "upstreams": UP, **(route or {})}], **top}
    return parse_gateway_settings(document, ENV)


def test_defaults() -> None:
    settings = parse()
    route = settings.routes[0]
    assert route.upstreams == tuple(UP)
    assert route.balance == "round_robin"
    assert route.retries == 1
    assert route.timeouts == Timeouts(connect=5.0, read=60.0, total=300.0, body_idle=30.0)
    assert route.health == Health(
        max_failures=3,
        eject_seconds=5.0,
        fail_on_5xx=False,
        check_interval=None,
        check_path="/healthz",
        check_timeout=2.0,
    )
    assert settings.shutdown == Shutdown(drain_delay=1.0, grace=30.0)
    assert settings.pool.idle_timeout < 2.0  # below gunicorn's 2 s keep-alive


def test_a_route_overrides_the_top_level_defaults_key_by_key() -> None:
    settings = parse(
        {"timeouts": {"read": 5}, "health": {"max_failures": 1}, "retries": 0},
        timeouts={"connect": 1, "read": 10, "total": None},
        health={"eject_seconds": 2, "check_interval": 3},
        balance="least_outstanding",
        shutdown={"drain_delay": 0, "grace": 5},
    )
    route = settings.routes[0]
    assert route.timeouts == Timeouts(connect=1.0, read=5.0, total=None, body_idle=30.0)
    assert route.health.max_failures == 1
    assert route.health.eject_seconds == 2.0
    assert route.health.check_interval == 3.0
    assert route.balance == "least_outstanding"
    assert route.retries == 0
    assert settings.shutdown == Shutdown(drain_delay=0.0, grace=5.0)


@pytest.mark.parametrize(
    ("route", "top", "field"),
    [
        ({"balance": "random"}, {}, "routes[0].balance"),
        ({}, {"balance": 3}, "balance"),
        ({"retries": 9}, {}, "routes[0].retries"),
        ({"retries": True}, {}, "routes[0].retries"),
        ({"upstreams": [UP[0], UP[0] + "/"]}, {}, "routes[0].upstreams"),
        ({"timeouts": {"total": 0}}, {}, "routes[0].timeouts.total"),
        ({"timeouts": {"idle": 1}}, {}, "routes[0].timeouts.idle"),
        ({"health": {"max_failures": 0}}, {}, "routes[0].health.max_failures"),
        ({"health": {"fail_on_5xx": "maybe"}}, {}, "routes[0].health.fail_on_5xx"),
        ({"health": {"check_path": "healthz"}}, {}, "routes[0].health.check_path"),
        ({}, {"health": {"check_interval": "soon"}}, "health.check_interval"),
        ({}, {"health": {"eject_seconds": -1}}, "health.eject_seconds"),
        ({}, {"shutdown": {"grace": 0}}, "shutdown.grace"),
        ({}, {"shutdown": {"drain_delay": -1}}, "shutdown.drain_delay"),
        ({}, {"shutdown": {"drain": 1}}, "shutdown.drain"),
    ],
)
def test_bad_values_are_one_line_naming_the_field(
    route: dict[str, Any], top: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(route, **top)
    message = str(info.value)
    assert message.startswith(field + ":")
    assert "\n" not in message
