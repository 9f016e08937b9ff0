"""The gateway's HTTP server (apigw/server.py): parse errors get fixed answers and logs."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage, InvalidHeader, LineTooLong

from apigw.server import ServerLog
from tests.support import DEMO_KEY, PROBLEM
from tests.support.apps import Client
from tests.support.upstream import Upstream
from tests.support.wire import exchange


def test_server_log_withholds_exception_messages(caplog: pytest.LogCaptureFixture) -> None:
    log = ServerLog(line_limit=100, server_header="apigw")
    leaky = RuntimeError(f"headers: {{'x-api-key': '{DEMO_KEY}'}}")
    with caplog.at_level(logging.DEBUG, logger="apigw.server"):
        log.exception("Unhandled exception", exc_info=leaky)
        try:
            raise leaky
        except RuntimeError:
            log.exception("Error handling request from %s", "127.0.0.1")
    assert len(caplog.records) == 2
    for record in caplog.records:
        assert record.exc_info is None
        assert "RuntimeError (message withheld)" in record.getMessage()


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (LineTooLong(b"GET /aaaa", 100), 414),
        (LineTooLong(b"X-Pad: vvvv", 164), 431),
        (BadHttpMessage("Too many headers received"), 431),
        (InvalidHeader(f"x-api-key {DEMO_KEY}".encode()), 400),
        (BadHttpMessage(f"Invalid header value char: {DEMO_KEY}"), 400),
    ],
    ids=["line", "field", "count", "invalid-header", "bad-message"],
)
def test_parse_errors_get_fixed_details(exc: Exception, status: int) -> None:
    got, detail = ServerLog(line_limit=100, server_header="apigw").classify(400, exc)
    assert got == status
    assert DEMO_KEY not in detail


async def test_parse_error_answers_change_for_the_gateway_only(
    gateway: Client, echo_upstream: Upstream
) -> None:
    """The gateway's fixed problem+json answer to a malformed request; aiohttp's own for
    every other server in the process, such as the upstream."""
    malformed = b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"
    assert gateway.port is not None and echo_upstream.server is not None
    ours = (await exchange(gateway.port, malformed)).reply
    assert (ours.status, ours.headers["Content-Type"]) == (400, PROBLEM)
    assert echo_upstream.server.port is not None
    theirs = (await exchange(echo_upstream.server.port, malformed)).reply
    assert theirs.status == 400
    assert theirs.headers["Content-Type"].startswith("text/plain")
