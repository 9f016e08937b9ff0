"""What the gateway relies on inside aiohttp beyond its public API: an upgrade that changes
any of it fails here, loudly, instead of quietly costing work per request or adding headers."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ClientRequest
from aiohttp.helpers import TimerNoop
from aiohttp.http_writer import StreamWriter, _serialize_headers
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

import apigw.client as apigw_client
from apigw.client import (
    ForwardingRequest,
    UpstreamCall,
    make_session,
)
from apigw.config.process import PoolSettings
from apigw.shared.headers import line_pairs

ServerFactory = Callable[..., Awaitable[TestServer]]
TIMEOUTS = aiohttp.ClientTimeout(total=None, connect=5, sock_connect=5, sock_read=5)
# The gateway's own headers, as the proxy hands them to the call (apigw/shared/headers.py).
LINES = "x-request-id: rid\r\nx-gateway-secret: a-secret-of-thirty-two-characters\r\n"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The gateway's pooled session, as make_session() builds it."""
    made = make_session(PoolSettings())
    yield made
    await made.close()


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


def test_upstream_call_does_what_session_request_does_for_the_proxy() -> None:
    # UpstreamCall repeats the part of ClientSession._request the proxy needs. If aiohttp
    # changes that part (what it passes to the connector and the protocol, how it sends and
    # starts the response, which connections it retries), this fails: re-read _request and
    # bring UpstreamCall in line.
    source = inspect.getsource(aiohttp.ClientSession._request)
    assert "conn = await self._connector.connect(\n" in source
    assert "req, traces=traces, timeout=real_timeout" in source
    assert "raise ConnectionTimeoutError(" in source
    params = re.search(r"conn\.protocol\.set_response_params\((.*?)\)\n", source, re.S)
    assert params is not None
    passed = set(re.findall(r"(\w+)=", params.group(1)))
    call = inspect.getsource(UpstreamCall._send)
    mine = re.search(r"protocol\.set_response_params\((.*?)\)\n", call, re.S)
    assert mine is not None
    assert passed == set(re.findall(r"(\w+)=", mine.group(1)))
    for step in (
        "resp = await req.send(conn)",
        "await resp.start(conn)",
        "resp.close()",
        "conn.close()",
        "await req._body.close()",
        "except (ClientOSError, ServerDisconnectedError):",
        "self._retry_connection and method in IDEMPOTENT_METHODS",
        "raise ClientOSError(*exc.args) from exc",
    ):
        assert step in source, step
    from aiohttp.client import IDEMPOTENT_METHODS

    assert IDEMPOTENT_METHODS == apigw_client._IDEMPOTENT
    # The session's parsing limits are the ones UpstreamCall gives the protocol.
    defaults = inspect.signature(aiohttp.ClientSession.__init__).parameters
    # Written out as aiohttp's own defaults, and kept so: aiohttp 3.14 raised read_bufsize to
    # 256 KiB, and the stale 64 KiB made a streamed download read one chunk per wake-up where
    # aiohttp reads three. An upgrade that moves one fails here.
    assert {
        name: defaults[name].default
        for name in ("read_bufsize", "max_line_size", "max_field_size", "max_headers")
    } == {
        "read_bufsize": apigw_client.READ_BUFSIZE,
        "max_line_size": apigw_client.MAX_LINE_SIZE,
        "max_field_size": apigw_client.MAX_FIELD_SIZE,
        "max_headers": apigw_client.MAX_HEADERS,
    }
    assert set(inspect.signature(ClientRequest.__init__).parameters) >= {
        "headers",
        "data",
        "loop",
        "timer",
        "session",
    }


async def test_upstream_call_sends_the_bytes_session_request_sends(
    session: aiohttp.ClientSession,
) -> None:
    heads: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: (\d+)", head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                heads.append(head + body)
                reply = b"HTTP/1.1 201 Made\r\nContent-Length: 2\r\nX-Up: 1\r\n\r\n"
                writer.write(reply if head.startswith(b"HEAD") else reply + b"ok")
                await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    call = UpstreamCall(session)
    cases = [("GET", None), ("POST", b"body"), ("DELETE", None), ("HEAD", None)]
    got: list[tuple[int, str, list[tuple[str, str]], bytes]] = []
    try:
        for method, data in cases:
            for how in ("session", "call"):
                headers = CIMultiDict([("X-Twice", "1"), ("X-Twice", "2")])
                base, path = f"http://127.0.0.1:{port}", "/a/b%2Fc?q=1"
                if how == "session":
                    url = URL(base + path, encoded=True)
                    headers.extend(line_pairs(LINES))
                    resp = await session.request(
                        method, url, headers=headers, data=data, allow_redirects=False
                    )
                else:
                    resp = await call(method, base, path, headers, LINES, data, TIMEOUTS)
                try:
                    got.append(
                        (
                            resp.status,
                            resp.reason or "",
                            list(resp.headers.items()),
                            await resp.read(),
                        )
                    )
                finally:
                    resp.release()
    finally:
        server.close()
        await server.wait_closed()
    assert len(heads) == 2 * len(cases)
    for n in range(0, len(heads), 2):
        assert heads[n] == heads[n + 1], (heads[n], heads[n + 1])
        assert got[n] == got[n + 1]
    assert heads[2].startswith(b"POST /a/b%2Fc?q=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    # The gateway's lines after the client's headers, on a bodiless request and on one
    # aiohttp sends itself.
    for head in heads:
        assert b"X-Twice: 2\r\n" + LINES.encode() in head, head
    assert got[0] == (201, "Made", [("Content-Length", "2"), ("X-Up", "1")], b"ok")
    assert got[-1][3] == b""  # HEAD: no body read


async def test_a_bodiless_request_sent_while_writes_are_paused_still_carries_the_lines(
    session: aiohttp.ClientSession,
) -> None:
    # On a pooled connection whose writes are paused, ForwardingRequest.send() leaves a
    # bodiless request to aiohttp's own send(), which writes only the multidict: the
    # gateway's lines must be in it.
    heads: list[bytes] = []
    paused: list[Any] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                for protocol in paused:
                    protocol.resume_writing()  # the head is in: let aiohttp's drain finish
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    call = UpstreamCall(session)
    headers = CIMultiDict([("X-Twice", "1")])
    try:
        (await call("GET", base, "/x", headers, LINES, None, TIMEOUTS)).release()
        connector: Any = session.connector
        [(pooled, _)] = [conn for conns in connector._conns.values() for conn in conns]
        pooled.pause_writing()
        paused.append(pooled)
        (await call("GET", base, "/x", headers, LINES, None, TIMEOUTS)).release()
    finally:
        server.close()
        await server.wait_closed()
    assert paused[0].writing_paused is False and len(heads) == 2
    assert heads[0] == heads[1]
    assert heads[1].endswith(b"X-Twice: 1\r\n" + LINES.encode() + b"\r\n")


async def test_upstream_call_resends_an_idempotent_request_once_on_a_stale_connection(
    session: aiohttp.ClientSession,
) -> None:
    served: list[bytes] = []

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Answers one request, then closes without saying so: the keep-alive race.
        served.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(answer_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    call = UpstreamCall(session)
    base = f"http://127.0.0.1:{port}"
    try:
        for method in ("GET", "GET", "DELETE"):
            resp = await call(method, base, "/x", CIMultiDict(), "", None, TIMEOUTS)
            await resp.read()
            resp.release()
            assert resp.status == 200
        # A POST on the same stale pooled connection is not sent again here; the proxy's
        # own retry rules (apigw/retries.py) decide.
        resp = await call("GET", base, "/x", CIMultiDict(), "", None, TIMEOUTS)
        resp.release()
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await call("POST", base, "/x", CIMultiDict(), "", None, TIMEOUTS)
    finally:
        server.close()
        await server.wait_closed()
    assert len(served) == 4


async def test_upstream_call_names_a_refused_connection_and_a_closed_session(
    session: aiohttp.ClientSession,
) -> None:
    call = UpstreamCall(session)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(aiohttp.ClientConnectorError):
        await call("GET", f"http://127.0.0.1:{port}", "/", CIMultiDict(), "", None, TIMEOUTS)
    await session.close()
    with pytest.raises(RuntimeError, match="closed"):
        await call("GET", f"http://127.0.0.1:{port}", "/", CIMultiDict(), "", None, TIMEOUTS)


async def test_a_bodiless_request_is_what_aiohttp_builds() -> None:
    # ForwardingRequest.bodiless() sets what ClientRequest.__init__ sets for a request
    # without a body; if an upgrade adds, drops or changes an attribute, this fails.
    session = make_session(PoolSettings())
    loop = asyncio.get_running_loop()
    try:
        for method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            url = URL("http://127.0.0.1:9/a/%2F?q=1", encoded=True)
            headers = CIMultiDict([("X-Twice", "1"), ("X-Twice", "2"), ("Accept", "*/*")])
            built = ForwardingRequest(
                method, url, headers=headers, loop=loop, timer=TimerNoop(), session=session
            )
            fast = ForwardingRequest.bodiless(
                method, url, headers, "", loop, session, built.connection_key
            )
            assert set(vars(fast)) == set(vars(built)) | {"_pool_key", "_lines"}
            for name, value in vars(built).items():
                if name == "headers":
                    assert list(fast.headers.items()) == list(value.items())
                elif name == "_timer":
                    assert type(fast._timer) is TimerNoop
                else:
                    assert getattr(fast, name) == value, name
            assert fast.connection_key == built.connection_key
            assert fast._body is None and fast._continue is None
    finally:
        await session.close()
    # bodiless() skips these steps of __init__: each must still do nothing for such a request.
    init = inspect.getsource(ClientRequest.__init__)
    for step in (
        "self.update_version(version)",
        "self.update_host(url)",
        "self.update_cookies(cookies)",
        "self.update_content_encoding(data)",
        "self.update_auth(auth, trust_env)",
        "self.update_proxy(proxy, proxy_auth, proxy_headers)",
        "self.update_body_from_data(data)",
        "if data is not None or self.method not in self.GET_METHODS:",
        "self.update_expect_continue(expect100)",
    ):
        assert step in init, step
    assert init.count("self.update_") == 11  # those, headers, auto headers, transfer encoding


async def test_a_bodiless_request_is_sent_as_aiohttp_sends_it() -> None:
    # ForwardingRequest.send() writes a bodiless request's head itself; these are the steps
    # of aiohttp's send() it repeats or may skip (no proxy, no compression, no chunking, no
    # Content-Type for GET-like methods, no tracing, a connector that never forces close).
    # test_upstream_call_sends_the_bytes_session_request_sends compares the bytes.
    send = inspect.getsource(ClientRequest.send)
    for step in (
        "path = self.url.raw_path_qs",
        "on_chunk_sent=(",
        "if self._traces",
        "if self.compress:",
        "if self.chunked is not None:",
        "if conn._connector.force_close:",
        'status_line = f"{self.method} {path} HTTP/{v.major}.{v.minor}"',
        "await writer.write_headers(status_line, self.headers)",
        "if self._body or self._continue is not None or protocol.writing_paused:",
        "protocol.start_timeout()",
        "writer.set_eof()",
        "writer=task,",
        "stream_writer=writer,",
    ):
        assert step in send, step
    assert ClientRequest.POST_METHODS.isdisjoint(ClientRequest.GET_METHODS)
    # send() and WholeAnswer write the head write_headers() would buffer, and then the
    # gateway's own lines: it must still be this function's, ending in the blank line.
    assert "buf = _serialize_headers(status_line, headers)" in inspect.getsource(
        StreamWriter.write_headers
    )
    assert (
        _serialize_headers("GET / HTTP/1.1", CIMultiDict(A="1"))
        == b"GET / HTTP/1.1\r\nA: 1\r\n\r\n"
    )
    session = make_session(PoolSettings())
    try:
        assert session.connector is not None and not session.connector.force_close
    finally:
        await session.close()
