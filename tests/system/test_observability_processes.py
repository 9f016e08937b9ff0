"""Observability of real gateway processes: gunicorn workers summed in one scrape, bounded
series, an access log that never holds a secret and never slows a request, trace context as a
backend sees it, and spans exported to an OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import string
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import DEMO_KEY, KEY, OTHER_KEY, ROOT, TEST_SECRET
from tests.support.apps import gateway_document
from tests.support.processes import Proc, System, ready
from tests.support.wait import eventually

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # A new connection per request: gunicorn's workers take turns accepting them.
    connector = aiohttp.TCPConnector(force_close=True, limit=16)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=10)
    ) as session:
        yield session


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def scrape(http: aiohttp.ClientSession, gateway: Proc) -> Samples:
    async with http.get(gateway.url + "/metrics") as resp:
        assert resp.status == 200
        return parse(await resp.text())


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of every series of `name` whose labels include `labels`."""
    return sum(
        v for (n, found), v in samples.items() if n == name and set(labels.items()) <= set(found)
    )


async def status(http: aiohttp.ClientSession, gateway: Proc) -> dict[str, Any]:
    async with http.get(gateway.url + "/status.json") as resp:
        assert resp.status == 200
        document: dict[str, Any] = await resp.json()
        return document


async def send(
    http: aiohttp.ClientSession, url: str, n: int, *, headers: dict[str, str] | None = None
) -> list[int]:
    semaphore = asyncio.Semaphore(16)

    async def one() -> int:
        async with semaphore, http.get(url, headers=headers or KEY) as resp:
            await resp.read()
            return resp.status

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def test_one_scrape_of_either_worker_sums_both_and_never_goes_down(
    system: System, http: aiohttp.ClientSession
) -> None:
    backend = system.upstream("b")
    await backend.ready()
    gunicorn = system.gateway(gateway_document({"/api": [backend.url]}), workers=2)
    await gunicorn.ready()
    sent = 300
    assert set(await send(http, gunicorn.url + "/api/x", sent)) == {200}

    async def summed() -> bool:
        samples = await scrape(http, gunicorn)
        return total(samples, "gateway_requests_total", route="/api") == sent

    await eventually(summed, f"{sent} requests in one scrape")
    workers = (await status(http, gunicorn))["workers"]
    assert len(workers) == 2
    assert all(w["requests"] > 0 for w in workers), workers
    assert sum(w["requests"] for w in workers) == sent
    # Whichever worker answers the scrape, the sum is the same.
    for _ in range(10):
        samples = await scrape(http, gunicorn)
        assert total(samples, "gateway_requests_total", route="/api") == sent
        assert total(samples, "gateway_request_duration_seconds_count", route="/api") == sent
        assert total(samples, "gateway_workers") == 2

    # A worker killed with a request under way: its counters stay, its in-flight gauge goes.
    # A POST: aiohttp's client would resend a GET on a new connection when this one dies.
    hanging = asyncio.create_task(http.post(gunicorn.url + "/api/hold", headers=KEY))
    holder: list[int] = []

    async def one_in_flight() -> bool:
        busy = [w["pid"] for w in (await status(http, gunicorn))["workers"] if w["in_flight"]]
        holder[:] = busy
        return len(busy) == 1

    await eventually(one_in_flight, "the hanging request in flight")
    samples = await scrape(http, gunicorn)
    assert total(samples, "gateway_requests_in_flight", route="/api") == 1
    os.kill(holder[0], signal.SIGKILL)
    with pytest.raises(aiohttp.ClientError):
        await hanging

    async def recovered() -> bool:
        samples = await scrape(http, gunicorn)
        return (
            total(samples, "gateway_requests_in_flight", route="/api") == 0
            and total(samples, "gateway_workers") == 2
        )

    await eventually(recovered, "the dead worker's in-flight gauge gone, a new worker")
    for _ in range(5):
        samples = await scrape(http, gunicorn)
        assert total(samples, "gateway_requests_total", route="/api") == sent

    # A reload replaces every worker: still no counter goes down.
    gunicorn.send(signal.SIGHUP)

    async def reloaded() -> bool:
        samples = await scrape(http, gunicorn)
        assert total(samples, "gateway_requests_total", route="/api") >= sent
        return total(samples, "gateway_config_reloads_total", result="success") == 1

    await eventually(reloaded, "the reload counted", timeout=20)
    assert set(await send(http, gunicorn.url + "/api/y", 50)) == {200}

    async def all_counted() -> bool:
        samples = await scrape(http, gunicorn)
        return total(samples, "gateway_requests_total", route="/api") == sent + 50

    await eventually(all_counted, "requests before and after the reload", timeout=20)
    assert (await status(http, gunicorn))["config"]["generation"] == 2


def _random_path(rng: random.Random) -> str:
    word = "".join(rng.choices(string.ascii_lowercase + string.digits, k=12))
    return rng.choice([f"/api/{word}", f"/{word}", f"/{word}/{word}", f"/api/{word}/x"])


async def test_random_paths_and_invented_methods_add_no_series(
    system: System, http: aiohttp.ClientSession
) -> None:
    backend = system.upstream("b")
    gateway = system.gateway(gateway_document({"/api": [backend.url]}, access_log=False))
    await ready(backend, gateway)
    rng = random.Random(10)
    methods = ["".join(rng.choices(string.ascii_uppercase, k=8)) for _ in range(100)]

    async def request(method: str, path: str) -> None:
        async with http.request(method, gateway.url + path, headers=KEY) as resp:
            await resp.read()

    # One of each kind first, so every series these requests can make exists.
    for path in ("/api/first", "/first", "/first/second", "/api/first/x"):
        await request("GET", path)
    await request(methods[0], "/api/first")
    await request("PROPFIND", "/api/first")
    before = set(await scrape(http, gateway))
    semaphore = asyncio.Semaphore(16)

    async def limited(method: str, path: str) -> None:
        async with semaphore:
            await request(method, path)

    await asyncio.gather(*(limited("GET", _random_path(rng)) for _ in range(10_000)))
    await asyncio.gather(*(limited(m, _random_path(rng)) for m in methods))
    after = await scrape(http, gateway)
    assert set(after) == before
    assert total(after, "gateway_requests_total") >= 10_000


async def test_the_access_log_holds_no_key_secret_cookie_or_authorization(
    system: System, http: aiohttp.ClientSession
) -> None:
    backend = system.upstream("b")
    gateway = system.gateway(gateway_document({"/api": [backend.url]}))  # log on, to stderr
    await ready(backend, gateway)
    secrets_sent = {DEMO_KEY, OTHER_KEY, TEST_SECRET}
    statuses: list[int] = []
    semaphore = asyncio.Semaphore(16)

    async def one(i: int) -> None:
        wrong_key = f"gw_wrong-key-{i:06d}-abcdef"
        cookie = f"session-cookie-{i:06d}"
        bearer = f"bearer-token-{i:06d}"
        secrets_sent.update({wrong_key, cookie, bearer})
        headers = {
            "x-api-key": DEMO_KEY if i % 3 else wrong_key,
            "Cookie": f"sid={cookie}",
            "Authorization": f"Bearer {bearer}",
            "Proxy-Authorization": f"Basic {bearer}",
            "x-gateway-secret": TEST_SECRET,
        }
        path = f"/api/item?api_key={wrong_key}&token={bearer}" if i % 2 else "/api/item"
        async with semaphore, http.get(gateway.url + path, headers=headers) as resp:
            await resp.read()
            statuses.append(resp.status)

    await asyncio.gather(*(one(i) for i in range(1000)))
    assert statuses.count(200) == 666 and statuses.count(401) == 334

    def access_lines() -> list[dict[str, Any]]:
        return [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]

    async def all_logged() -> bool:
        return len(access_lines()) == 1000

    await eventually(all_logged, "1000 access log lines")
    lines = access_lines()
    assert {line["status"] for line in lines} == {200, 401}
    assert all("?" not in line["path"] for line in lines)
    assert all(len(json.dumps(line)) < 4096 for line in lines)
    text = gateway.log()
    leaked = sorted(s for s in secrets_sent if s in text)
    assert leaked == []


async def test_a_blocked_log_sink_drops_lines_and_never_slows_requests(
    system: System, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sink = tmp_path / "access.fifo"
    os.mkfifo(sink)
    # Opened, never read: once the pipe's buffer is full, every write to it blocks.
    reader = os.open(sink, os.O_RDONLY | os.O_NONBLOCK)
    try:
        backend = system.upstream("b")
        gateway = system.gateway(
            gateway_document(
                {"/api": [backend.url]}, access_log={"target": str(sink), "queue": 500}
            )
        )
        await ready(backend, gateway)
        # Far more lines than the pipe and the queue hold; each request must still be
        # answered (the client gives up on any that takes 10 s).
        assert set(await send(http, gateway.url + "/api/x", 3000)) == {200}

        async def dropped() -> bool:
            samples = await scrape(http, gateway)
            return total(samples, "gateway_access_log_dropped_total") > 0

        await eventually(dropped, "dropped lines counted")
        assert (await status(http, gateway))["access_log"]["dropped"] > 0
    finally:
        os.close(reader)


async def test_the_backend_sees_the_trace_continued_or_started(
    system: System, http: aiohttp.ClientSession
) -> None:
    backend = system.upstream("b")
    gateway = system.gateway(gateway_document({"/api": [backend.url]}))
    await ready(backend, gateway)
    incoming = f"00-{TRACE_ID}-{PARENT_ID}-01"
    headers = {**KEY, "traceparent": incoming, "tracestate": "congo=t61rcWkgMzE"}
    async with http.get(gateway.url + "/api/t", headers=headers) as resp:
        seen = await resp.json()
    (traceparent,) = seen["traceparent"]
    version, trace_id, parent_id, flags = traceparent.split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
    assert parent_id != PARENT_ID
    assert seen["tracestate"] == ["congo=t61rcWkgMzE"]

    for bad in (None, "00-xyz", f"00-{TRACE_ID}-{PARENT_ID}-01-extra"):
        headers = dict(KEY) if bad is None else {**KEY, "traceparent": bad, "tracestate": "a=b"}
        async with http.get(gateway.url + "/api/t", headers=headers) as resp:
            seen = await resp.json()
        (traceparent,) = seen["traceparent"]
        _, trace_id, parent_id, _ = traceparent.split("-")
        assert len(trace_id) == 32 and trace_id != TRACE_ID and int(trace_id, 16)
        assert len(parent_id) == 16 and int(parent_id, 16)
        assert seen["tracestate"] == []


class OtlpReceiver:
    """A small OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        assert request.content_type == "application/x-protobuf"
        message = ExportTraceServiceRequest.FromString(await request.read())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


async def test_spans_are_exported_to_an_otlp_receiver(
    system: System,
    http: aiohttp.ClientSession,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    receiver = OtlpReceiver()
    app = web.Application()
    app.router.add_post("/v1/traces", receiver.handle)
    server = await aiohttp_server(app)
    backend = system.upstream("b")
    endpoint = str(server.make_url("/v1/traces"))
    gateway = system.gateway(
        gateway_document(
            {"/api": [backend.url]},
            tracing={"otlp_endpoint": endpoint, "export_interval": 0.1, "service_name": "edge"},
        )
    )
    await ready(backend, gateway)
    headers = {**KEY, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    async with http.get(gateway.url + "/api/span", headers=headers) as resp:
        seen = await resp.json()
        assert resp.status == 200
    backend_parent = seen["traceparent"][0].split("-")[2]

    async def exported() -> bool:
        return len(receiver.spans) >= 2

    await eventually(exported, "the server and client spans")
    by_kind = {span.kind: span for span in receiver.spans}
    server_span = by_kind[2]  # SPAN_KIND_SERVER
    client_span = by_kind[3]  # SPAN_KIND_CLIENT
    assert server_span.trace_id.hex() == TRACE_ID == client_span.trace_id.hex()
    assert server_span.parent_span_id.hex() == PARENT_ID
    assert client_span.parent_span_id == server_span.span_id
    # The backend's parent is the attempt's span.
    assert client_span.span_id.hex() == backend_parent
    assert server_span.name == "GET /api"
    attributes = {a.key: a.value for a in server_span.attributes}
    assert attributes["http.route"].string_value == "/api"
    assert attributes["http.response.status_code"].int_value == 200
    assert attributes["url.path"].string_value == "/api/span"
    client_attributes = {a.key: a.value for a in client_span.attributes}
    assert client_attributes["server.port"].int_value == backend.port


def test_without_an_endpoint_the_sdk_is_never_imported(tmp_path: Path) -> None:
    program = """
import asyncio, sys
from aiohttp.test_utils import TestClient, TestServer
from gateway import create_app
from tests.conftest import make_settings

async def main():
    app = await create_app(make_settings({"/api": ["http://127.0.0.1:1"]}))
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/api/x", headers={"x-api-key": "secret002oUdaRJA"})
        assert resp.status == 502, resp.status
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
    assert loaded == [], loaded

asyncio.run(main())
"""
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
