"""Logs and error bodies: never a key or the secret, and no flood from a flood of garbage.

The autouse leak guard (conftest) already searches every record and every response of these
tests; the tests here make sure the dangerous paths are actually taken.
"""

from __future__ import annotations

import logging
import logging.handlers

import pytest
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, InvalidHeader, LineTooLong

from apigw.server import ServerLog
from apigw.shared.logs import RateLimitedLog, RedactingFilter, describe_exception, install_redaction
from tests.adversarial.conftest import Gateway, QuietEcho
from tests.adversarial.wire import exchange, request
from tests.conftest import DEMO_KEY, OTHER_KEY, TEST_SECRET

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
    assert reply.headers["Content-Type"] == "application/problem+json"
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


def test_rate_limited_log_summarises_what_it_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    limited = RateLimitedLog(
        logging.getLogger("test.flood"), interval=10, burst=2, clock=lambda: now[0]
    )
    with caplog.at_level(logging.INFO, logger="test.flood"):
        for _ in range(7):
            limited.log(logging.WARNING, "BadHttpMessage", "bad request %d", 1)
        limited.log(logging.WARNING, "LineTooLong", "too long")
        now[0] = 11.0
        limited.log(logging.WARNING, "BadHttpMessage", "bad request %d", 2)
    messages = [r.getMessage() for r in caplog.records if r.name == "test.flood"]
    assert messages == [
        "bad request 1",
        "bad request 1",
        "6 more similar lines held back in the last 11 s (BadHttpMessage: 5, LineTooLong: 1)",
        "bad request 2",
    ]


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


def test_describe_exception_keeps_the_stack_not_the_message() -> None:
    try:
        raise ValueError(TEST_SECRET)
    except ValueError as exc:
        text = describe_exception(exc)
    assert TEST_SECRET not in text
    assert "ValueError (message withheld)" in text
    assert "test_describe_exception_keeps_the_stack_not_the_message" in text


def test_redacting_filter_masks_secrets_and_credential_pairs() -> None:
    redactor = RedactingFilter([TEST_SECRET])
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "sent %s with x-api-key: %s and {'X-Api-Key': '%s'}",
        (TEST_SECRET, DEMO_KEY, OTHER_KEY),
        None,
    )
    assert redactor.filter(record)
    text = record.getMessage()
    for needle in (TEST_SECRET, DEMO_KEY, OTHER_KEY):
        assert needle not in text
    assert text.count("[redacted]") == 3


async def test_other_servers_keep_aiohttp_error_answers(quiet_echo: QuietEcho) -> None:
    """The gateway's parse-error answers apply to the gateway only, not to other apps."""
    assert quiet_echo.server is not None and quiet_echo.server.port is not None
    result = await exchange(quiet_echo.server.port, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
    assert result.statuses == [400]
    assert result.replies[0].headers["Content-Type"].startswith("text/plain")


def test_server_log_is_a_logger_adapter_for_aiohttp() -> None:
    # aiohttp calls .exception/.debug/.warning on the `logger` handler argument.
    log = ServerLog(line_limit=100, server_header="apigw")
    assert isinstance(log, logging.LoggerAdapter)
    assert web.Application(handler_args={"logger": log})


def test_install_redaction_filters_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redaction")
    logger.propagate = False
    handler = logging.handlers.BufferingHandler(10)
    logger.addHandler(handler)
    try:
        install_redaction([TEST_SECRET], logger)
        logger.warning("secret is %s", TEST_SECRET)
        (record,) = handler.buffer
        assert TEST_SECRET not in handler.format(record)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
