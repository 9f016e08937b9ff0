"""Metrics, trace context, the admin surface and the access log of one gateway process.

The gateway runs in the test's loop on a real socket in front of the echo upstream; the
multi-process behaviour (gunicorn workers, a blocked log sink, OTLP export, the status page in
a browser) is in tests/system/test_observability_processes.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from apigw.config import ConfigError
from apigw.observability.access_log import MAX_WRITE, Clock, encode
from apigw.observability.admin import quantile
from apigw.observability.metrics import BUCKETS
from apigw.observability.metrics_share import add_into, merge
from apigw.observability.tracecontext import clean_tracestate, parse_traceparent
from apigw.shared.appkeys import OBSERVER_KEY, RELOADER_KEY
from tests.support import DEMO_KEY, KEY
from tests.support.apps import GatewayFactory, make_settings
from tests.support.upstream import Upstream
from tests.support.wait import eventually

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, as a real scraper parses it."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def scrape(
    gateway: TestClient[Any, Any],
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await gateway.get("/metrics")
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    return samples(await resp.text())


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def observed(
    make_gateway: GatewayFactory, echo_upstream: Upstream, tmp_path: Path
) -> TestClient[Any, Any]:
    settings = make_settings(
        {"/users": [echo_upstream.url], "/orders": [echo_upstream.url]},
        extra={"access_log": {"target": str(tmp_path / "access.log")}},
    )
    return await make_gateway(settings)


def log_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- trace context -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (VALID, (TRACE_ID, PARENT_ID, "01")),
        (f"00-{TRACE_ID}-{PARENT_ID}-00", (TRACE_ID, PARENT_ID, "00")),
        (f"cc-{TRACE_ID}-{PARENT_ID}-01-future-part", (TRACE_ID, PARENT_ID, "01")),
        (f"00-{TRACE_ID}-{PARENT_ID}-ff", (TRACE_ID, PARENT_ID, "03")),
        (f"00-{TRACE_ID}-{PARENT_ID}-01-extra", None),
        (f"ff-{TRACE_ID}-{PARENT_ID}-01", None),
        (f"00-{'0' * 32}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID}-{'0' * 16}-01", None),
        (f"00-{TRACE_ID.upper()}-{PARENT_ID}-01", None),
        (f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01", None),
        ("garbage", None),
        ("", None),
    ],
    ids=[
        "valid",
        "not-sampled",
        "future-version",
        "unknown-flags-masked",
        "v00-with-extra-field",
        "version-ff",
        "zero-trace",
        "zero-parent",
        "uppercase",
        "short-trace",
        "garbage",
        "empty",
    ],
)
def test_traceparent_parsing_follows_the_w3c_rules(
    header: str, expected: tuple[str, str, str] | None
) -> None:
    assert parse_traceparent(header) == expected


def test_tracestate_keeps_whole_members_within_the_w3c_limits() -> None:
    assert clean_tracestate(["a=1, b=2", "c=3"]) == "a=1,b=2,c=3"
    assert clean_tracestate(["", " , "]) is None
    assert clean_tracestate(["big=" + "x" * 200 + ",ok=1"]) == "ok=1"
    many = ",".join(f"k{i}=v" for i in range(40))
    kept = clean_tracestate([many])
    assert kept is not None and kept.count("=") == 32


async def test_a_valid_traceparent_is_continued_with_the_gateways_span_as_parent(
    observed: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    resp = await observed.get(
        "/users/1", headers={**KEY, "traceparent": VALID, "tracestate": "vendor=abc"}
    )
    assert resp.status == 200
    sent = echo_upstream.seen[-1].headers
    assert sent.getall("traceparent") == [sent["traceparent"]]
    version, trace_id, parent_id, flags = sent["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert parent_id != PARENT_ID and len(parent_id) == 16
    assert sent["tracestate"] == "vendor=abc"


@pytest.mark.parametrize(
    "incoming",
    [None, "00-garbage", f"00-{'0' * 32}-{PARENT_ID}-01"],
    ids=["missing", "malformed", "zero-trace-id"],
)
async def test_a_missing_or_invalid_traceparent_starts_a_new_trace(
    observed: TestClient[Any, Any], echo_upstream: Upstream, incoming: str | None
) -> None:
    headers = dict(KEY)
    if incoming is not None:
        headers |= {"traceparent": incoming, "tracestate": "vendor=abc"}
    assert (await observed.get("/users/1", headers=headers)).status == 200
    sent = echo_upstream.seen[-1].headers
    parsed = parse_traceparent(sent["traceparent"])
    assert parsed is not None
    assert parsed[0] != TRACE_ID
    # A restarted trace drops the old tracestate with it.
    assert "tracestate" not in sent


async def test_each_request_gets_its_own_request_trace_and_span_ids(
    observed: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    # They are cut from one random draw per request: no id may repeat another's digits.
    seen: list[str] = []
    for headers in (KEY, KEY, {**KEY, "traceparent": VALID}):
        resp = await observed.get("/users/1", headers=headers)
        assert resp.status == 200
        _, trace_id, span_id, _ = echo_upstream.seen[-1].headers["traceparent"].split("-")
        request_id = resp.headers["X-Request-ID"]
        assert re.fullmatch("[0-9a-f]{32}", request_id)
        seen += [request_id, span_id] if trace_id == TRACE_ID else [request_id, trace_id, span_id]
    assert len(seen) == 8
    assert all(a not in b for a in seen for b in seen if a is not b)


async def test_two_traceparent_headers_start_a_new_trace(
    observed: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    headers = [*KEY.items(), ("traceparent", VALID), ("traceparent", VALID)]
    assert (await observed.get("/users/1", headers=headers)).status == 200
    assert TRACE_ID not in echo_upstream.seen[-1].headers["traceparent"]


async def test_error_bodies_carry_the_trace_id_the_access_log_has(
    observed: TestClient[Any, Any], tmp_path: Path
) -> None:
    resp = await observed.get("/users/1", headers={"traceparent": VALID})
    assert resp.status == 401
    body = await resp.json()
    assert body["trace_id"] == TRACE_ID
    await eventually(
        lambda: _async(
            any(line["trace_id"] == TRACE_ID for line in log_lines(tmp_path / "access.log"))
        ),
        "the access log line",
    )
    line = next(x for x in log_lines(tmp_path / "access.log") if x["trace_id"] == TRACE_ID)
    assert line["request_id"] == body["request_id"]
    assert (line["status"], line["source"], line["reason"], line["route"]) == (
        401,
        "gateway",
        "auth",
        "/users",
    )


async def _async(result: bool) -> bool:
    return result


# --- metrics -------------------------------------------------------------------------------


async def test_metrics_count_requests_by_route_method_code_and_source(
    observed: TestClient[Any, Any],
) -> None:
    for _ in range(3):
        assert (await observed.get("/users/1", headers=KEY)).status == 200
    assert (await observed.post("/orders", headers=KEY, data=b"x" * 1000)).status == 200
    assert (await observed.get("/users/status-503", headers=KEY)).status == 503
    assert (await observed.get("/users/1")).status == 401
    assert (await observed.get("/nowhere", headers=KEY)).status == 404
    found = await scrape(observed)
    total = "gateway_requests_total"
    assert value(found, total, route="/users", method="GET", code="200", source="upstream") == 3
    assert value(found, total, route="/orders", method="POST", code="200", source="upstream") == 1
    assert value(found, total, route="/users", method="GET", code="503", source="upstream") == 1
    assert value(found, total, route="/users", method="GET", code="401", source="gateway") == 1
    assert value(found, total, route="unmatched", method="GET", code="404", source="gateway") == 1
    assert value(found, "gateway_rejections_total", route="/users", reason="auth") == 1
    assert value(found, "gateway_rejections_total", route="unmatched", reason="no_route") == 1
    assert value(found, "gateway_bytes_total", route="/orders", direction="in") == 1000
    assert value(found, "gateway_request_duration_seconds_count", route="/users") == 5
    assert value(found, "gateway_upstream_duration_seconds_count", route="/users") == 4
    assert value(found, "gateway_requests_in_flight", route="/users") == 0
    key = {"route": "/users", "consumer": "demo", "code_class": "2xx"}
    assert value(found, "gateway_consumer_requests_total", **key) == 3
    key["consumer"], key["code_class"] = "anonymous", "4xx"
    assert value(found, "gateway_consumer_requests_total", **key) == 1
    assert value(found, "gateway_info", version="0.1.0") == 1
    # The scrape itself, /healthz and /docs are not traffic.
    assert (await observed.get("/healthz")).status == 200
    again = await scrape(observed)
    assert sum(v for (n, _), v in again.items() if n == total) == 7


async def test_upstream_failures_count_errors_retries_ejections_and_target_health(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    dead = "http://127.0.0.1:1"
    settings = make_settings(
        {"/users": [dead, echo_upstream.url]},
        extra={"health": {"max_failures": 1, "eject_seconds": 60}, "balance": "round_robin"},
    )
    gateway = await make_gateway(settings)
    for _ in range(4):
        assert (await gateway.get("/users/1", headers=KEY)).status == 200
    found = await scrape(gateway)
    assert value(found, "gateway_upstream_errors_total", route="/users", kind="connect") == 1
    assert value(found, "gateway_upstream_retries_total", route="/users") == 1
    assert value(found, "gateway_upstream_ejections_total", route="/users", target=dead) == 1
    assert value(found, "gateway_upstream_target_up", route="/users", target=dead) == 0
    up = value(found, "gateway_upstream_target_up", route="/users", target=echo_upstream.url)
    assert up == 1


async def test_openmetrics_is_served_when_asked_for_and_parses(
    observed: TestClient[Any, Any],
) -> None:
    assert (await observed.get("/users/1", headers=KEY)).status == 200
    resp = await observed.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    text = await resp.text()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}  # type: ignore[no-untyped-call]
    assert families["gateway_requests"].type == "counter"
    assert families["gateway"].type == "info"
    assert families["gateway_request_duration_seconds"].type == "histogram"


async def test_counters_survive_a_reload_that_removes_the_route(
    observed: TestClient[Any, Any], echo_upstream: Upstream
) -> None:
    assert (await observed.get("/orders/1", headers=KEY)).status == 200
    observer = observed.app[OBSERVER_KEY]
    observed.app[RELOADER_KEY].apply(make_settings({"/users": [echo_upstream.url]}))
    assert (await observed.get("/orders/1", headers=KEY)).status == 404
    found = await scrape(observed)
    total = "gateway_requests_total"
    assert value(found, total, route="/orders", method="GET", code="200", source="upstream") == 1
    assert value(found, total, route="unmatched", method="GET", code="404", source="gateway") == 1
    assert value(found, "gateway_config_reloads_total", result="success") == 1
    assert observer.generation == 2


def test_histogram_buckets_run_from_sub_millisecond_to_a_minute() -> None:
    assert BUCKETS[0] < 0.001
    assert BUCKETS[-1] == 60.0
    assert list(BUCKETS) == sorted(BUCKETS)


def test_quantiles_interpolate_within_a_bucket_like_promql() -> None:
    counts = [0.0] * (len(BUCKETS) + 1)
    counts[BUCKETS.index(0.01)] = 10  # ten answers between 5 and 10 ms
    assert quantile(0.5, counts) == pytest.approx(0.0075)
    assert quantile(0.5, [0.0] * (len(BUCKETS) + 1)) is None


def test_merging_sums_counters_of_every_worker_and_gauges_of_live_ones_only() -> None:
    live = {
        "counters": {"gateway_requests_total": {"a": 2}},
        "histograms": {"h": {"r": [1, 0, 0.5]}},
        "gauges": {"gateway_requests_in_flight": {"r": 1}, "gateway_upstream_target_up": {"t": 1}},
        "worker": {"pid": 1},
    }
    other = {
        "counters": {"gateway_requests_total": {"a": 3, "b": 1}},
        "histograms": {"h": {"r": [0, 2, 1.5]}},
        "gauges": {"gateway_requests_in_flight": {"r": 2}, "gateway_upstream_target_up": {"t": 0}},
        "worker": {"pid": 2},
    }
    dead = {
        "counters": {"gateway_requests_total": {"a": 10}},
        "gauges": {"gateway_requests_in_flight": {"r": 7}},
    }
    merged = merge([live, other], [dead])
    assert merged["counters"]["gateway_requests_total"] == {"a": 15, "b": 1}
    assert merged["histograms"]["h"]["r"] == [1, 2, 2.0]
    assert merged["gauges"]["gateway_requests_in_flight"] == {"r": 3}
    assert merged["gauges"]["gateway_upstream_target_up"] == {"t": 0}
    assert merged["workers"] == 2
    into: dict[str, Any] = {}
    add_into(into, live)
    assert into["counters"] is not live["counters"]


# --- access log ----------------------------------------------------------------------------


async def test_one_json_line_per_request_with_the_allowed_fields(
    observed: TestClient[Any, Any], tmp_path: Path
) -> None:
    resp = await observed.post(
        "/orders/7?token=query-secret",
        headers={**KEY, "User-Agent": "probe/1.0", "Cookie": "s=cookie-secret"},
        data=b"y" * 100,
    )
    assert resp.status == 200
    path = tmp_path / "access.log"
    await eventually(lambda: _async(len(log_lines(path)) == 1), "one access log line")
    (line,) = log_lines(path)
    assert set(line) == {
        "time", "request_id", "trace_id", "span_id", "consumer", "route", "method", "path",
        "status", "source", "reason", "bytes_in", "bytes_out", "upstream", "upstream_status",
        "attempts", "duration_ms", "upstream_ms", "client_ip", "user_agent",
    }  # fmt: skip
    assert line["request_id"] == resp.headers["X-Request-ID"]
    assert line["consumer"] == "demo"
    assert (line["route"], line["method"], line["path"]) == ("/orders", "POST", "/orders/7")
    assert (line["status"], line["source"], line["upstream_status"]) == (200, "upstream", 200)
    assert line["bytes_in"] == 100
    assert line["bytes_out"] == len(await resp.read())
    assert line["attempts"] == 1
    assert line["user_agent"] == "probe/1.0"
    assert line["client_ip"] == "127.0.0.1"
    assert line["time"].endswith("Z")
    text = path.read_text()
    for secret in (DEMO_KEY, "query-secret", "cookie-secret"):
        assert secret not in text


async def test_access_log_false_writes_nothing_and_metrics_false_counts_nothing(
    make_gateway: GatewayFactory, echo_upstream: Upstream, tmp_path: Path
) -> None:
    settings = make_settings(
        {"/users": [echo_upstream.url]}, extra={"access_log": False, "metrics": False}
    )
    gateway = await make_gateway(settings)
    assert gateway.app[OBSERVER_KEY].access_log is None
    assert (await gateway.get("/users/1", headers=KEY)).status == 200
    found = await scrape(gateway)
    assert not [k for k in found if k[0] == "gateway_requests_total"]


def test_a_line_never_reaches_4_kib_whatever_the_client_sends() -> None:
    record: dict[str, Any] = {
        "path": "/" + "\x01" * 1024,
        "user_agent": "\x02" * 256,
        "status": 200,
    }
    line = encode(record)
    assert len(line) <= MAX_WRITE
    assert line.endswith(b"\n")
    assert json.loads(line)["status"] == 200


def test_a_path_that_is_not_utf_8_is_logged_escaped() -> None:
    # What aiohttp's pure-Python parser makes of a raw 0xff byte in the request target.
    line = json.loads(encode({"path": "/users/\udcff", "status": 400}))
    assert line == {"path": "/users/\\udcff", "status": 400}


def test_timestamps_are_utc_iso_with_milliseconds() -> None:
    stamp = Clock().now()
    assert len(stamp) == len("2026-01-01T00:00:00.000Z")
    assert stamp[10] == "T" and stamp.endswith("Z")


# --- admin surface -------------------------------------------------------------------------


async def test_admin_pages_answer_loopback_clients_without_a_key(
    observed: TestClient[Any, Any],
) -> None:
    for path in ("/metrics", "/status", "/status.json"):
        resp = await observed.get(path)
        assert resp.status == 200, path
    page = await observed.get("/status")
    assert page.content_type == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    html = await page.text()
    # Nothing is loaded from anywhere: no external script, style sheet, font or image.
    for loader in ("<script src", "<link", "url(", "@import", 'src="http'):
        assert loader not in html
    document = await (await observed.get("/status.json")).json()
    assert [r["route"] for r in document["routes"]] == ["/users", "/orders", "unmatched"]
    assert document["routes"][0]["targets"][0]["up"] is True
    text = json.dumps(document)
    assert "key_sha256" not in text and "secret" not in text.lower()


async def test_admin_pages_are_an_unknown_path_to_clients_outside_admin_allow(
    make_gateway: GatewayFactory, echo_upstream: Upstream
) -> None:
    settings = make_settings(
        {"/users": [echo_upstream.url]}, extra={"admin": {"allow": ["10.0.0.0/8"]}}
    )
    gateway = await make_gateway(settings)
    unknown = await gateway.get("/no-such-path", headers=KEY)
    unknown_body = await unknown.json()
    for path in ("/metrics", "/status", "/status.json"):
        without_key = await gateway.get(path)
        assert without_key.status == 401, path
        resp = await gateway.get(path, headers=KEY)
        body = await resp.json()
        assert resp.status == unknown.status == 404, path
        assert resp.content_type == unknown.content_type
        drop = ("request_id", "trace_id")
        assert {k: v for k, v in body.items() if k not in drop} == {
            k: v for k, v in unknown_body.items() if k not in drop
        }


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"admin": {"allow": ["not-a-net"]}}, "admin.allow[0]"),
        ({"admin": {"allow": "127.0.0.1"}}, "admin.allow"),
        ({"access_log": {"target": ""}}, "access_log.target"),
        ({"access_log": {"queue": 0}}, "access_log.queue"),
        ({"access_log": "maybe"}, "access_log"),
        ({"tracing": {"otlp_endpoint": "collector:4318"}}, "tracing.otlp_endpoint"),
        ({"tracing": {"sample_ratio": 2}}, "tracing.sample_ratio"),
        ({"metrics": {"enabled": "perhaps"}}, "metrics.enabled"),
    ],
    ids=[
        "bad-cidr",
        "allow-not-a-list",
        "empty-target",
        "zero-queue",
        "access-log-word",
        "endpoint-no-scheme",
        "ratio-over-one",
        "metrics-word",
    ],
)
def test_bad_observability_config_is_one_line_naming_the_field(
    extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings({"/users": ["http://127.0.0.1:1"]}, extra=extra)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("prefix", ["/metrics", "/status", "/status.json"])
def test_the_admin_paths_cannot_be_route_prefixes(prefix: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings({prefix: ["http://127.0.0.1:1"]})
    assert "routes[0].prefix" in str(caught.value)


def test_access_log_keeps_its_boolean_form() -> None:
    assert make_settings({"/u": ["http://127.0.0.1:1"]}).access_log.enabled is True
    off = make_settings({"/u": ["http://127.0.0.1:1"]}, extra={"access_log": False})
    assert off.access_log.enabled is False


async def test_another_part_can_add_a_gauge_that_workers_merge(
    observed: TestClient[Any, Any],
) -> None:
    from apigw.observability.metrics import labels

    metrics = observed.app[OBSERVER_KEY].metrics
    metrics.add_gauge(
        "gateway_rate_limit_store_up",
        "1 when the rate-limit store answers.",
        lambda: {labels(store="redis"): 1},
        merge="min",
    )
    found = await scrape(observed)
    assert value(found, "gateway_rate_limit_store_up", store="redis") == 1
    merged = merge(
        [{"gauges": {"g": {"": 1}}, "families": {"g": ["h", "min"]}}, {"gauges": {"g": {"": 0}}}],
        [],
    )
    assert merged["gauges"]["g"] == {"": 0}


async def test_bytes_of_a_long_download_are_counted_while_it_runs(
    make_gateway: GatewayFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    release = asyncio.Event()

    async def slow_download(request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse()
        await stream.prepare(request)
        await stream.write(b"z" * 1_000_000)
        await release.wait()
        await stream.write(b"z" * 1000)
        return stream

    app = web.Application()
    app.router.add_get("/files/{name}", slow_download)
    upstream = await aiohttp_server(app)
    gateway = await make_gateway(
        make_settings({"/files": [str(upstream.make_url("")).rstrip("/")]})
    )
    resp = await gateway.get("/files/big", headers=KEY)
    assert resp.status == 200
    received = len(await resp.content.readexactly(1_000_000))

    async def counted() -> bool:
        found = await scrape(gateway)
        return value(found, "gateway_bytes_total", route="/files", direction="out") >= received

    await eventually(counted, "the first megabyte counted before the download ends")
    found = await scrape(gateway)
    assert value(found, "gateway_requests_in_flight", route="/files") == 1
    release.set()
    assert len(await resp.read()) == 1000


def test_a_dead_workers_file_is_folded_keeping_its_counters_not_its_gauges(
    tmp_path: Path,
) -> None:
    from apigw.observability.metrics_share import SharedMetrics, record_reload, retire_worker

    shared = SharedMetrics(tmp_path)
    dead_pid = 999_999
    (tmp_path / f"w-{dead_pid}.json").write_text(
        json.dumps(
            {
                "counters": {"gateway_requests_total": {"a": 5}},
                "gauges": {"gateway_requests_in_flight": {"r": 3}},
                "worker": {"pid": dead_pid},
            }
        )
    )
    shared.write({"counters": {"gateway_requests_total": {"a": 1}}, "worker": {"pid": 1}})
    assert shared.collect()["gauges"]["gateway_requests_in_flight"] == {"r": 3}
    retire_worker(tmp_path, dead_pid)
    record_reload(tmp_path, ok=True)
    for _ in range(2):  # folded once, then read from retired.json
        merged = shared.collect()
        assert merged["counters"]["gateway_requests_total"] == {"a": 6}
        assert merged["gauges"].get("gateway_requests_in_flight", {}) == {}
        assert merged["workers"] == 1
        assert merged["generation"] == 2
        assert merged["counters"]["gateway_config_reloads_total"] == {'result="success"': 1}
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "master.json",
        "retired.json",
        f"w-{os.getpid()}.json",
    ]


def test_a_removed_shared_directory_is_made_again(tmp_path: Path) -> None:
    from apigw.observability.metrics_share import SharedMetrics

    directory = tmp_path / "metrics"
    directory.mkdir()
    shared = SharedMetrics(directory)
    directory.rmdir()
    shared.write({"counters": {"gateway_requests_total": {"a": 1}}})
    assert shared.collect()["counters"]["gateway_requests_total"] == {"a": 1}
