"""What the gateway relies on inside aiohttp beyond its public API: an upgrade that changes
any of it fails here, loudly, instead of quietly costing work per request or adding headers."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.client_reqrep import ClientRequest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from apigw.config.process import PoolSettings
from apigw.proxy import ForwardingRequest, make_session

ServerFactory = Callable[..., Awaitable[TestServer]]


def test_client_request_still_builds_auto_headers_through_the_overridden_method() -> None:
    # ForwardingRequest overrides update_auto_headers; aiohttp must still call it from
    # __init__, with no other method of its own left to add default headers.
    init = inspect.getsource(ClientRequest.__init__)
    assert "self.update_auto_headers(skip_auto_headers)" in init
    assert "self.update_headers(headers)" in init
    # The override of update_headers keeps what aiohttp's does: a fresh multidict in
    # self.headers, the URL's host:port as Host first, the caller's Host replacing it.
    update = inspect.getsource(ClientRequest.update_headers)
    assert "self.headers: CIMultiDict[str] = CIMultiDict()" in update
    assert "host = self.url.host_port_subcomponent" in update
    assert "self.headers[hdrs.HOST] = host" in update
    assert "if key in hdrs.HOST_ALL:" in update
    assert ForwardingRequest.update_auto_headers is not ClientRequest.update_auto_headers
    source = inspect.getsource(ClientRequest)
    assert source.count("DEFAULT_HEADERS") == 2  # declared, and read only in the overridden one
    assert source.count("SERVER_SOFTWARE") == 1  # User-Agent: only in the overridden method
    # Content-Type and payload headers are skipped through this attribute, which the
    # override sets once for all requests.
    assert "self._skip_auto_headers" in inspect.getsource(ClientRequest.send)
    assert "self._skip_auto_headers" in inspect.getsource(ClientRequest.update_body_from_data)


async def test_forwarding_session_adds_no_header_of_its_own(
    aiohttp_server: ServerFactory,
) -> None:
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        await request.read()
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    session = make_session(PoolSettings())
    try:
        for method, data in (("GET", None), ("POST", b"body"), ("PUT", b"")):
            async with session.request(method, server.make_url("/x"), data=data) as resp:
                assert resp.status == 200
    finally:
        await session.close()
    added = {"accept", "accept-encoding", "user-agent", "content-type"}
    for headers in seen:
        assert not added & {name.lower() for name in headers}, headers
    # The body is still framed by the session (Content-Length), and Host is set.
    assert seen[1]["Content-Length"] == "4"
    assert all(headers["Host"] == f"127.0.0.1:{server.port}" for headers in seen)


async def test_forwarding_session_sends_repeated_headers_and_an_explicit_host(
    aiohttp_server: ServerFactory,
) -> None:
    seen: list[CIMultiDictProxy[str]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers)
        return web.Response()

    app = web.Application()
    app.router.add_get("/x", record)
    server = await aiohttp_server(app)
    session = make_session(PoolSettings())
    repeated = CIMultiDict([("X-Twice", "1"), ("X-Twice", "2"), ("X-Other", "o")])
    try:
        async with session.get(server.make_url("/x"), headers=repeated) as resp:
            assert resp.status == 200
        async with session.get(server.make_url("/x"), headers={"Host": "named.test"}) as resp:
            assert resp.status == 200
    finally:
        await session.close()
    assert seen[0].getall("X-Twice") == ["1", "2"]
    assert seen[0]["X-Other"] == "o"
    assert next(iter(seen[0])) == "Host"
    assert seen[1].getall("Host") == ["named.test"]


async def test_forwarding_request_is_the_session_request_class() -> None:
    session: Any = make_session(PoolSettings())
    try:
        assert session._request_class is ForwardingRequest
    finally:
        await session.close()
    assert issubclass(ForwardingRequest, aiohttp.ClientRequest)


async def test_session_passes_a_fresh_multidict_through_unmerged() -> None:
    # make_session replaces the session's _prepare_headers: a CIMultiDict goes through as it
    # is. That equals aiohttp's merge only while the session has no default headers and
    # _request still prepares the caller's headers through that one method.
    request_source = inspect.getsource(aiohttp.ClientSession._request)
    assert "headers = self._prepare_headers(headers)" in request_source
    merge_source = inspect.getsource(aiohttp.ClientSession._prepare_headers)
    assert "result = CIMultiDict(self._default_headers)" in merge_source
    session: Any = make_session(PoolSettings())
    try:
        assert not session._default_headers
        mine: CIMultiDict[str] = CIMultiDict([("A", "1"), ("A", "2")])
        assert session._prepare_headers(mine) is mine
        merged = session._prepare_headers({"B": "1"})
        assert isinstance(merged, CIMultiDict)
        assert dict(merged) == {"B": "1"}
    finally:
        await session.close()
