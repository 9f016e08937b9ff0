"""WholeAnswer (apigw/answer.py) frames an upstream's whole answer exactly as aiohttp's
web.Response would: compared on the wire, byte for byte, over the methods, statuses, bodies,
headers, HTTP versions and keep-alive cases that decide the framing. It reaches into
aiohttp's response internals, so this is also what fails if an upgrade changes them."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from apigw.answer import WholeAnswer
from apigw.shared.appkeys import OBSERVER_KEY
from tests.support import KEY
from tests.support.apps import Client
from tests.support.wire import exchange, request

ServerFactory = Callable[..., Awaitable[TestServer]]
_DATE = re.compile(rb"\r\nDate: [^\r]*")
_FIELDS = re.compile(rb"\r\nRateLimit(?:-Policy)?: [^\r]*")


async def answer(request: web.Request) -> web.StreamResponse:
    query = request.query
    status = int(query["status"])
    body = query["body"].encode()
    headers = CIMultiDict([("X-Up", "1"), ("X-Up", "2")])
    if query["length"]:
        headers["Content-Length"] = query["length"]
    if query["type"]:
        headers["Content-Type"] = query["type"]
    if query["server"]:
        headers["Server"] = query["server"]
    # A RateLimit field of the upstream's own stays beside the gateway's.
    fields = ('"burst";q=20;w=1, "daily";q=1000;w=86400', '"daily";r=12;t=3600')
    if query["fields"]:
        headers.add("RateLimit", '"upstream";r=1;t=1')
    response: web.StreamResponse
    if request.match_info["kind"] == "whole":
        response = WholeAnswer(
            status, query["reason"] or None, headers, body, fields if query["fields"] else None
        )
    else:
        if query["fields"]:
            headers.add("RateLimit-Policy", fields[0])
            headers.add("RateLimit", fields[1])
        response = web.Response(
            status=status, reason=query["reason"] or None, headers=headers, body=body
        )
    if query["close"]:
        response.force_close()
    return response


def cases() -> list[tuple[str, str, str, dict[str, str]]]:
    found = []
    for method, status, body, length, kind, server, close, fields, (
        version,
        connection,
    ) in itertools.product(
        ("GET", "HEAD", "POST"),
        (200, 204, 304, 404),
        ("", "hello"),
        (False, True),
        ("", "text/plain"),
        ("", "apigw"),
        ("", "1"),
        ("", "1"),
        (("HTTP/1.1", ""), ("HTTP/1.1", "close"), ("HTTP/1.0", ""), ("HTTP/1.0", "keep-alive")),
    ):
        if body and (method == "HEAD" or status in (204, 304)):
            continue  # the upstream sent none: the proxy's buffered body is empty
        query = {
            "status": str(status),
            "body": body,
            # The upstream's own length; a HEAD's is the length of the GET.
            "length": ("5" if method == "HEAD" else str(len(body))) if length else "",
            "type": kind,
            "server": server,
            "close": close,
            "fields": fields,
            "reason": "Fine Here" if status == 200 and server else "",
        }
        found.append((method, version, connection, query))
    return found


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
async def test_whole_answer_is_framed_as_web_response_frames_it(
    aiohttp_server: ServerFactory, method: str
) -> None:
    app = web.Application()
    app.router.add_route("*", "/{kind}", answer)
    server = await aiohttp_server(app)
    port = server.port
    assert port is not None

    async def fetch(kind: str, version: str, connection: str, query: dict[str, str]) -> bytes:
        target = f"/{kind}?" + "&".join(f"{k}={v}" for k, v in query.items()).replace(" ", "%20")
        lines = [f"Connection: {connection}"] if connection else []
        probe = request("/whole?status=200&body=&length=&type=&server=&close=&fields=&reason=")
        seen = await exchange(
            port,
            request(target, *lines, method=method, version=version, key=False),
            head=method == "HEAD",
            probe=probe,
        )
        # Date is the clock's; whether the connection stayed open is part of the answer.
        raw = _DATE.sub(b"", seen.raw) + (b"\nclosed" if seen.closed else b"\nopen")
        # The gateway's RateLimit fields end a whole answer's head; web.Response has them
        # where they were added. Compared apart: present once each, after the upstream's.
        fields = _FIELDS.findall(raw)
        return b"".join(fields) + b"\n" + _FIELDS.sub(b"", raw)

    compared = 0
    for case_method, version, connection, query in cases():
        if case_method != method:
            continue
        expected, got = await asyncio.gather(
            fetch("response", version, connection, query),
            fetch("whole", version, connection, query),
        )
        assert got == expected, (method, version, connection, query)
        compared += 1
    assert compared >= 200


async def test_a_prepared_whole_answer_is_sent_once(aiohttp_server: ServerFactory) -> None:
    # aiohttp prepares and ends every returned response; prepared by the handler already,
    # nothing goes out twice.
    async def handler(request: web.Request) -> web.StreamResponse:
        response = WholeAnswer(200, None, CIMultiDict(), b"once")
        await response.prepare(request)
        assert response.prepared
        return response

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)
    assert server.port is not None
    seen = await exchange(server.port, request("/", key=False), linger=0.2)
    assert seen.raw.count(b"HTTP/1.1 200") == 1
    assert seen.reply.body == b"once"
    assert seen.reply.headers["Content-Type"] == "application/octet-stream"


async def test_a_small_answer_leaves_before_the_gateway_records_it(
    gateway: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The metrics and the access log line are written while the client reads its answer,
    # not before it leaves: at one request at a time, that is the gap between two requests.
    observer = gateway.app[OBSERVER_KEY]
    finish = observer.finish
    sent_when_recorded: list[int] = []

    def recording(request: web.Request, *args: Any) -> None:
        sent_when_recorded.append(request.writer.output_size)
        finish(request, *args)

    monkeypatch.setattr(observer, "finish", recording)
    resp = await gateway.get("/users/1", headers=KEY)
    body = await resp.read()
    assert resp.status == 200
    assert body
    (sent,) = sent_when_recorded
    assert sent > len(body)  # the status line, the headers and the body
