"""Redacted, rate-limited logs (apigw/shared/logs.py): no secret, no key, no flood."""

from __future__ import annotations

import logging
import logging.handlers

import pytest

from apigw.shared.logs import RateLimitedLog, RedactingFilter, describe_exception, install_redaction
from tests.support import DEMO_KEY, OTHER_KEY, TEST_SECRET


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
