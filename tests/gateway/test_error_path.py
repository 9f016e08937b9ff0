"""The one error path: an error after a response has started cuts the connection, and never
sends a second response head onto the started one (middleware.error_middleware)."""

from __future__ import annotations

from aiohttp import web

from apigw.shared.appkeys import SERVER_HEADER_KEY
from middleware import error_middleware, request_id_middleware
from tests.support.apps import ServerFactory
from tests.support.wire import exchange, request


async def _fails_mid_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"first part of the reply")
    raise RuntimeError("went wrong after the head was sent")


async def _fails_before_the_head(request: web.Request) -> web.StreamResponse:
    raise RuntimeError("went wrong early")


async def _read_all(port: int, path: str) -> bytes:
    # The server either closes (EOF) or cuts the connection (reset): either ends the read.
    return (await exchange(port, request(path, "Connection: close", key=False))).raw


async def test_an_error_after_the_head_aborts_instead_of_a_second_head(
    aiohttp_server: ServerFactory,
) -> None:
    app = web.Application(middlewares=(request_id_middleware, error_middleware))
    app[SERVER_HEADER_KEY] = "apigw"
    app.router.add_get("/late", _fails_mid_stream)
    app.router.add_get("/early", _fails_before_the_head)
    server = await aiohttp_server(app)
    assert server.port is not None

    late = await _read_all(server.port, "/late")
    assert late.count(b"HTTP/1.1 ") == 1
    assert late.startswith(b"HTTP/1.1 200 ")
    assert b"first part of the reply" in late
    # Cut, not completed: the chunked body never gets its terminating zero-length chunk.
    assert not late.endswith(b"0\r\n\r\n")
    assert b"problem+json" not in late

    early = await _read_all(server.port, "/early")
    assert early.startswith(b"HTTP/1.1 500 ")
    assert b"application/problem+json" in early
