"""Logs and error bodies: never a key or the secret, and no flood from a flood of garbage.

The autouse leak guard (conftest) already searches every record and every response of these
tests; the tests here make sure the dangerous paths are actually taken.
"""

from __future__ import annotations

import logging

import pytest

from tests.support import DEMO_KEY, OTHER_KEY, PROBLEM, TEST_SECRET
from tests.support.hostile import Gateway
from tests.support.wire import exchange, request

BAD_LINES = [
    f"x-api-key {DEMO_KEY}",  # no colon
    f"x-api-key: {DEMO_KEY}\x01",  # control character in the value
    f"x-api-key : {DEMO_KEY}",  # space before the colon
    f"x-api-key: {DEMO_KEY}\rx-gateway-secret: {TEST_SECRET}",  # bare CR
    f"X-Note: {OTHER_KEY}\x00",  # NUL
    f"x-gateway-secret: {TEST_SECRET}\x7f",  # DEL
]


def server_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    # apigw.docs reports the start-up fetch of backend documents, not request handling.
    return [
        r
        for r in caplog.records
        if r.name.startswith(("aiohttp.server", "apigw")) and r.name != "apigw.docs"
    ]


@pytest.mark.parametrize("line", BAD_LINES, ids=range(len(BAD_LINES)))
async def test_malformed_line_with_a_credential_is_answered_and_logged_without_it(
    gw: Gateway, caplog: pytest.LogCaptureFixture, line: str
) -> None:
    result = await gw.send(request("/users/1", line, key=False), linger=1.5)
    assert result.statuses == [400]
    assert result.closed
    (reply,) = result.replies
    assert reply.headers["Content-Type"] == PROBLEM
    assert b"parsed" in reply.body  # the fixed detail, not the parser's quote of the line
    warnings = [r for r in server_records(caplog) if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "malformed request" in warnings[0].getMessage()
    assert warnings[0].exc_info is None
    # (The leak guard then checks every record and byte for the key and the secret.)


async def test_wrong_and_duplicate_keys_are_not_logged(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    for headers, status in (
        ((f"x-api-key: {DEMO_KEY}x",), 401),
        ((f"x-api-key: {DEMO_KEY}", f"x-api-key: {OTHER_KEY}"), 400),
        ((f"x-api-key: {TEST_SECRET}",), 401),
    ):
        result = await gw.send(request("/users/1", *headers, key=False))
        assert result.statuses == [status]
    assert gw.upstream.seen == []


async def test_parse_error_logging_is_rate_limited(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(60):
        result = await exchange(gw.port, request("/users/1", f"x-api-key {DEMO_KEY}", key=False))
        assert result.statuses == [400]
    lines = [r for r in server_records(caplog) if r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 5, [r.getMessage() for r in lines]
