"""Plans, rate limits and consumers in the config: every mistake one line naming the field (and
the file and line for consumers_file), keys minted straight into a consumers_file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from apigw.config import ConfigError, load_gateway_settings, parse_gateway_settings
from apigw.config.consumers import DEMO_KEY_DIGEST
from apigw.config.plans import Quota, Rate
from apigw.keys import Keyring
from apigw.keys import main as keys_main
from tests.support import DEMO_KEY

DEMO_DIGEST = DEMO_KEY_DIGEST.hex()
OTHER_DIGEST = hashlib.sha256(b"gw_other").hexdigest()
REDIS_PASSWORD = "hunter2-redis-password"


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "routes": [
            {"prefix": "/users", "upstreams": ["http://127.0.0.1:8001"]},
            {"prefix": "/orders", "upstreams": ["http://127.0.0.1:8002"]},
        ],
        "plans": {"free": {"rate": {"limit": 10, "per": "1s", "burst": 20}}},
        "consumers": [{"name": "demo", "key_sha256": DEMO_DIGEST}],
    }
    base.update(overrides)
    return base


def test_plans_periods_and_defaults() -> None:
    settings = parse_gateway_settings(
        doc(
            plans={
                "free": {
                    "rate": {"limit": 10, "per": "10s", "burst": 20},
                    "quotas": [
                        {"name": "daily", "limit": 1000, "per": "day"},
                        {"limit": 5, "per": "month"},
                    ],
                },
                "hourly": {"rate": {"limit": 100, "per": "1h"}},
            },
            default_plan="free",
            consumers=[
                {"name": "demo", "key_sha256": DEMO_DIGEST},
                {"name": "b", "key_sha256": OTHER_DIGEST, "plan": "hourly", "routes": ["/users"]},
            ],
        ),
        {},
    )
    free = settings.plans["free"]
    assert free.rate == Rate(limit=10, per=10.0, burst=20, name="burst")
    assert free.quotas == (Quota("daily", 1000, "day"), Quota("month", 5, "month"))
    assert settings.plans["hourly"].rate == Rate(limit=100, per=3600.0, burst=100, name="burst")
    assert settings.plans["unlimited"].unlimited
    demo, b = settings.consumers
    assert (demo.plan, demo.routes) == ("free", None)
    assert (b.plan, b.routes) == ("hourly", frozenset({"/users"}))


@pytest.mark.parametrize(
    ("document", "names"),
    [
        (doc(plans={"free": {"rate": {"limit": 0}}}), "plans.free.rate.limit"),
        (doc(plans={"free": {"rate": {"per": "1s"}}}), "plans.free.rate.limit"),
        (doc(plans={"free": {"rate": {"limit": 1, "per": "0s"}}}), "plans.free.rate.per"),
        (doc(plans={"free": {"rate": {"limit": 1, "per": "1d"}}}), "plans.free.rate.per"),
        (doc(plans={"free": {"rate": {"limit": 1, "burst": 0}}}), "plans.free.rate.burst"),
        (doc(plans={"free": {"rate": {"limit": 1, "name": "a b"}}}), "plans.free.rate.name"),
        (
            doc(plans={"free": {"quotas": [{"limit": 1, "per": "week"}]}}),
            "plans.free.quotas[0].per",
        ),
        (doc(plans={"free": {"quotas": [{"per": "day"}]}}), "plans.free.quotas[0].limit"),
        (
            doc(
                plans={"free": {"quotas": [{"per": "day", "limit": 1}, {"per": "day", "limit": 2}]}}
            ),
            "plans.free.quotas[1].name",
        ),
        (doc(plans={"free": {"rates": {}}}), "plans.free.rates"),
        (doc(default_plan="gold"), "default_plan"),
        (
            doc(consumers=[{"name": "d", "key_sha256": DEMO_DIGEST, "plan": "gold"}]),
            "consumers[0].plan",
        ),
        (
            doc(consumers=[{"name": "d", "key_sha256": DEMO_DIGEST, "routes": ["/admin"]}]),
            "consumers[0].routes[0]",
        ),
        (
            doc(consumers=[{"name": "d", "key_sha256": DEMO_DIGEST, "keys_sha256": [DEMO_DIGEST]}]),
            "consumers[0]",
        ),
        (doc(consumers=[{"name": "d", "keys_sha256": []}]), "consumers[0].keys_sha256"),
        (
            doc(consumers=[{"name": "d", "keys_sha256": [OTHER_DIGEST, "nope"]}]),
            "consumers[0].keys_sha256[1]",
        ),
        (
            doc(
                routes=[
                    {
                        "prefix": "/u",
                        "upstreams": ["http://a"],
                        "rate": {"limit": 1, "name": "burst"},
                    }
                ]
            ),
            "rate.name",
        ),
        (doc(rate_limits={"store": "memcached"}), "rate_limits.store"),
        (doc(rate_limits={"on_store_error": "panic"}), "rate_limits.on_store_error"),
        (doc(rate_limits={"redis_url": f"http://u:{REDIS_PASSWORD}@h"}), "rate_limits.redis_url"),
        (doc(rate_limits={"redis_timeout": 0}), "rate_limits.redis_timeout"),
        (doc(consumers_file=""), "consumers_file"),
    ],
)
def test_bad_plans_and_consumers_are_one_line_naming_the_field(
    document: dict[str, Any], names: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_gateway_settings(document, {})
    message = str(info.value)
    assert names in message
    assert "\n" not in message
    assert REDIS_PASSWORD not in message


def test_the_redis_url_never_shows_in_the_settings_repr() -> None:
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0"
    settings = parse_gateway_settings(doc(rate_limits={"store": "redis", "redis_url": url}), {})
    assert settings.rate_limits.redis_url == url
    assert REDIS_PASSWORD not in repr(settings)


def test_rate_limit_settings_take_environment_variables() -> None:
    settings = parse_gateway_settings(
        doc(rate_limits={"store": "${STORE:-local}", "redis_pool": "${POOL}"}),
        {"STORE": "redis", "POOL": "8"},
    )
    assert (settings.rate_limits.store, settings.rate_limits.redis_pool) == ("redis", 8)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def config_with_file(tmp_path: Path, file_name: str) -> Path:
    config = tmp_path / "gateway.yaml"
    config.write_text(
        json.dumps({**doc(), "consumers_file": file_name}),  # JSON is YAML
        encoding="utf-8",
    )
    return config


def test_consumers_file_is_json_lines_relative_to_the_config(tmp_path: Path) -> None:
    write_lines(
        tmp_path / "consumers.jsonl",
        [
            "# minted with python -m apigw.keys NAME --append consumers.jsonl",
            json.dumps({"name": "alice", "key_sha256": OTHER_DIGEST, "plan": "free"}),
            "",
            json.dumps({"name": "bob", "keys_sha256": [hashlib.sha256(b"k").hexdigest()]}),
        ],
    )
    settings = load_gateway_settings(config_with_file(tmp_path, "consumers.jsonl"), {})
    assert [(c.name, c.plan) for c in settings.consumers] == [
        ("demo", "unlimited"),
        ("alice", "free"),
        ("bob", "unlimited"),
    ]
    bob = Keyring(settings.consumers).consumer_for(b"k")
    assert bob is not None
    assert bob.name == "bob"


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("{not json", "line 2: not JSON"),
        ('["a list"]', "line 2: expected a mapping"),
        (json.dumps({"name": "x", "key_sha256": "short"}), "line 2, field key_sha256"),
        (
            json.dumps({"name": "x", "key_sha256": OTHER_DIGEST, "plan": "gold"}),
            "line 2, field plan",
        ),
        (json.dumps({"name": "demo", "key_sha256": OTHER_DIGEST}), "line 2, field name"),
        (json.dumps({"name": "x", "key_sha256": DEMO_DIGEST}), "line 2, field key_sha256"),
        (json.dumps({"name": "x", "key_sha256": OTHER_DIGEST, "extra": 1}), "line 2, field extra"),
    ],
)
def test_a_bad_consumers_file_line_is_one_error_naming_the_file_and_line(
    tmp_path: Path, line: str, names: str
) -> None:
    path = write_lines(
        tmp_path / "c.jsonl",
        [json.dumps({"name": "ok", "key_sha256": hashlib.sha256(b"o").hexdigest()}), line],
    )
    with pytest.raises(ConfigError) as info:
        load_gateway_settings(config_with_file(tmp_path, "c.jsonl"), {})
    message = str(info.value)
    assert message.startswith(f"consumers_file {path} ")
    assert names in message
    assert "\n" not in message


def test_a_missing_consumers_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^consumers_file .*missing\.jsonl: "):
        load_gateway_settings(config_with_file(tmp_path, "missing.jsonl"), {})


def test_keys_append_mints_a_consumer_into_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "consumers.jsonl"
    path.write_text(json.dumps({"name": "old", "key_sha256": OTHER_DIGEST}), encoding="utf-8")
    assert keys_main(["alice", "--append", str(path), "--plan", "free"]) == 0
    out = capsys.readouterr().out
    key = next(line.strip() for line in out.splitlines() if line.strip().startswith("gw_"))
    assert out.count(key) == 1
    assert key not in path.read_text(encoding="utf-8")
    settings = load_gateway_settings(config_with_file(tmp_path, "consumers.jsonl"), {})
    alice = Keyring(settings.consumers).consumer_for(key.encode())
    assert alice is not None
    assert (alice.name, alice.plan) == ("alice", "free")
    with pytest.raises(SystemExit, match="already there"):
        keys_main(["alice", "--append", str(path)])


def test_one_hundred_thousand_consumers_in_a_file_all_resolve(tmp_path: Path) -> None:
    """The scale the issue asks for (timing is in the benchmark note, not here)."""
    path = tmp_path / "many.jsonl"
    keys = [f"gw_key-{i}".encode() for i in range(100_000)]
    with path.open("w", encoding="utf-8") as out:
        for i, key in enumerate(keys):
            entry = {"name": f"c{i}", "key_sha256": hashlib.sha256(key).hexdigest()}
            out.write(json.dumps(entry) + "\n")
    settings = load_gateway_settings(config_with_file(tmp_path, "many.jsonl"), {})
    keyring = Keyring(settings.consumers)
    assert len(settings.consumers) == 100_001
    for i in (0, 4242, 99_999):
        found = keyring.consumer_for(keys[i])
        assert found is not None
        assert found.name == f"c{i}"
    demo = keyring.consumer_for(DEMO_KEY.encode())
    assert demo is not None
    assert demo.name == "demo"
    assert keyring.consumer_for(b"gw_key-100000") is None
