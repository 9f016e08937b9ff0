"""Config: parsed once, every mistake one line naming the field, secrets never shown."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from apigw.config import (
    DEMO_GATEWAY_SECRET,
    ConfigError,
    load_gateway_settings,
    load_service_settings,
    parse_gateway_settings,
)
from apigw.config.consumers import DEMO_KEY_DIGEST
from apigw.keys import Keyring
from tests.support import DEMO_KEY, ROOT, TEST_SECRET
from tests.support.processes import fresh_interpreter

DEMO_DIGEST = DEMO_KEY_DIGEST.hex()


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "routes": [{"prefix": "/users", "upstreams": ["http://127.0.0.1:8001"]}],
        "consumers": [{"name": "demo", "key_sha256": DEMO_DIGEST}],
    }
    base.update(overrides)
    return base


def test_shipped_config_routes_users_and_orders_with_env_defaults() -> None:
    settings = load_gateway_settings(ROOT / "gateway.yaml", {})
    assert [(r.prefix, r.upstreams) for r in settings.routes] == [
        ("/users", ("http://127.0.0.1:8001",)),
        ("/orders", ("http://127.0.0.1:8002",)),
    ]
    demo = Keyring(settings.consumers).consumer_for(DEMO_KEY.encode())
    assert demo is not None
    assert demo.name == "demo"


def test_env_substitution_overrides_defaults() -> None:
    settings = load_gateway_settings(
        ROOT / "gateway.yaml",
        {"USERS_SERVICE_URL": "http://10.0.0.5:9000/", "GATEWAY_SECRET": TEST_SECRET},
    )
    assert settings.routes[0].upstreams == ("http://10.0.0.5:9000",)
    assert settings.gateway_secret == TEST_SECRET


def test_shipped_config_holds_no_plaintext_key() -> None:
    text = (ROOT / "gateway.yaml").read_text()
    assert DEMO_KEY not in text
    assert hashlib.sha256(DEMO_KEY.encode()).hexdigest() in text


def test_repr_shows_no_secret() -> None:
    settings = parse_gateway_settings(doc(), {"GATEWAY_SECRET": TEST_SECRET})
    assert TEST_SECRET not in repr(settings)
    assert TEST_SECRET not in str(settings)
    services = load_service_settings({"GATEWAY_SECRET": f"{TEST_SECRET},{TEST_SECRET}-old"})
    assert TEST_SECRET not in repr(services)


@pytest.mark.parametrize(
    ("document", "env", "names"),
    [
        (doc(routes=[]), {}, "routes"),
        (doc(routes=[{"prefix": "users", "upstreams": ["http://a"]}]), {}, "routes[0].prefix"),
        (doc(routes=[{"prefix": "/users/", "upstreams": ["http://a"]}]), {}, "routes[0].prefix"),
        (doc(routes=[{"prefix": "/a/../b", "upstreams": ["http://a"]}]), {}, "routes[0].prefix"),
        (doc(routes=[{"prefix": "/docs", "upstreams": ["http://a"]}]), {}, "routes[0].prefix"),
        (doc(routes=[{"prefix": "/u", "upstreams": []}]), {}, "routes[0].upstreams"),
        (doc(routes=[{"prefix": "/u", "upstreams": ["ftp://a"]}]), {}, "routes[0].upstreams[0]"),
        (
            doc(routes=[{"prefix": "/u", "upstreams": ["http://u:p@a"]}]),
            {},
            "routes[0].upstreams[0]",
        ),
        (
            doc(routes=[{"prefix": "/u", "upstreams": ["http://a"], "timeout": 1}]),
            {},
            "routes[0].timeout",
        ),
        (
            doc(routes=[{"prefix": "/u", "upstreams": ["http://a"], "timeouts": {"read": -1}}]),
            {},
            "routes[0].timeouts.read",
        ),
        (
            doc(
                routes=[
                    {"prefix": "/u", "upstreams": ["http://a"]},
                    {"prefix": "/u", "upstreams": ["http://b"]},
                ]
            ),
            {},
            "routes[1].prefix",
        ),
        (doc(routes=[{"prefix": "/u", "upstreams": ["${NOPE}"]}]), {}, "NOPE"),
        (doc(consumers=[{"name": "x y", "key_sha256": DEMO_DIGEST}]), {}, "consumers[0].name"),
        (doc(consumers=[{"name": "x", "key_sha256": "abc"}]), {}, "consumers[0].key_sha256"),
        (doc(consumers=[{"name": "x", "key": DEMO_KEY}]), {}, "consumers[0].key"),
        (
            doc(
                consumers=[
                    {"name": "a", "key_sha256": DEMO_DIGEST},
                    {"name": "b", "key_sha256": DEMO_DIGEST},
                ]
            ),
            {},
            "consumers[1].key_sha256",
        ),
        (doc(pool={"max_connections": 0}), {}, "pool.max_connections"),
        (doc(unknown=1), {}, "config.unknown"),
        (doc(), {"GATEWAY_SECRET": "short"}, "GATEWAY_SECRET"),
        (doc(), {"GATEWAY_SECRET": f"{TEST_SECRET},{TEST_SECRET}2"}, "GATEWAY_SECRET"),
        (doc(), {"GATEWAY_SECRET": DEMO_KEY + "-padding"}, None),
        (doc(), {"GATEWAY_PRODUCTION": "maybe"}, "GATEWAY_PRODUCTION"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(
    document: dict[str, Any], env: dict[str, str], names: str | None
) -> None:
    if names is None:
        parse_gateway_settings(document, env)
        return
    with pytest.raises(ConfigError) as info:
        parse_gateway_settings(document, env)
    message = str(info.value)
    assert names in message
    assert "\n" not in message
    assert DEMO_KEY not in message


def test_secret_equal_to_a_client_key_is_refused() -> None:
    key = "a-client-key-used-as-secret"
    document = doc(
        consumers=[{"name": "c", "key_sha256": hashlib.sha256(key.encode()).hexdigest()}]
    )
    with pytest.raises(ConfigError, match="GATEWAY_SECRET"):
        parse_gateway_settings(document, {"GATEWAY_SECRET": key})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_SECRET": TEST_SECRET}, "demo key"),
        ({}, "demo secret"),
    ],
)
def test_production_refuses_demo_credentials(env: dict[str, str], message: str) -> None:
    document = doc() if "key" in message else doc(consumers=[])
    with pytest.raises(ConfigError, match=message):
        parse_gateway_settings(document, {**env, "GATEWAY_PRODUCTION": "1"})
    with pytest.raises(ConfigError, match=message):
        parse_gateway_settings(document, env, production=True)


def test_production_accepts_real_credentials() -> None:
    other = hashlib.sha256(b"gw_real-key").hexdigest()
    settings = parse_gateway_settings(
        doc(consumers=[{"name": "real", "key_sha256": other}]),
        {"GATEWAY_SECRET": TEST_SECRET, "GATEWAY_PRODUCTION": "yes"},
    )
    assert settings.production


def test_services_accept_several_secrets_for_rotation() -> None:
    settings = load_service_settings({"GATEWAY_SECRET": f"{TEST_SECRET}, {TEST_SECRET}-next"})
    assert settings.accepted_secrets == (TEST_SECRET, f"{TEST_SECRET}-next")
    assert load_service_settings({}).accepted_secrets == (DEMO_GATEWAY_SECRET,)
    with pytest.raises(ConfigError, match="demo secret"):
        load_service_settings({"GATEWAY_PRODUCTION": "1"})


def test_yaml_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("routes:\n  - prefix: /a\n   upstreams: [\n")
    with pytest.raises(ConfigError) as info:
        load_gateway_settings(path, {})
    assert str(path) in str(info.value)
    assert "line" in str(info.value)


def test_a_worker_keeps_no_yaml_parser_once_its_config_is_read(tmp_path: Path) -> None:
    # PyYAML (about 1 MB a worker) is needed only while a config is read: at start-up and on
    # each reload, a bad file included. A fresh interpreter: this one imported PyYAML itself.
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes: [\n")
    script = f"""
import sys
import gateway
from apigw.config import ConfigError, load_gateway_settings

before = "yaml" in sys.modules
for _ in range(2):
    settings = load_gateway_settings("gateway.yaml", {{}})
try:
    load_gateway_settings({str(bad)!r}, {{}})
except ConfigError as exc:
    error = str(exc)
left = sorted(m for m in sys.modules if m == "yaml" or m.startswith(("yaml.", "_yaml")))
print(before, [r.prefix for r in settings.routes], "line" in error, left)
"""
    done = fresh_interpreter(script)
    assert done.stdout.split("\n")[0] == "False ['/users', '/orders'] True []", done.stderr
