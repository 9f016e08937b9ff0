"""Log lines that cannot leak a key or a secret, and cannot be used to flood the log.

Client input never goes into a log line as is: an exception is logged by its type and its
stack (file, line, code), never its message, which may quote request bytes or headers.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable

REDACTED = "[redacted]"
# `name: value` or `name=value` for the credential headers, however a line came to hold one.
_CREDENTIAL_PAIR = re.compile(
    r"(?i)(x-api-key|x-gateway-secret|authorization|proxy-authorization)(['\"]?\s*[:=,]\s*['\"]?)"
    r"[^\s'\",;]+"
)


def describe_exception(exc: BaseException) -> str:
    """The exception's type and stack, without its message (which may quote client input)."""
    stack = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    name = type(exc).__qualname__
    return f"{name} (message withheld)\n{stack}" if stack else f"{name} (message withheld)"


class RateLimitedLog:
    """At most `burst` lines per `interval` seconds; the rest are counted, then summarised.

    The summary is written with the first line of the next interval, so a flood costs a few
    lines per interval whatever its size.
    """

    __slots__ = ("_burst", "_clock", "_interval", "_logger", "_sent", "_suppressed", "_window")

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 10.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._burst = burst
        self._clock = clock
        self._window = -interval
        self._sent = 0
        self._suppressed: Counter[str] = Counter()

    def log(self, level: int, kind: str, msg: str, *args: object) -> None:
        """Log `msg % args`, unless this interval's budget is spent; `kind` groups the count."""
        now = self._clock()
        if now - self._window >= self._interval:
            self._flush(now)
        if self._sent >= self._burst:
            self._suppressed[kind] += 1
            return
        self._sent += 1
        self._logger.log(level, msg, *args)

    def _flush(self, now: float) -> None:
        if self._suppressed:
            counts = ", ".join(f"{kind}: {n}" for kind, n in sorted(self._suppressed.items()))
            total = sum(self._suppressed.values())
            self._logger.warning(
                "%d more similar lines held back in the last %.0f s (%s)",
                total,
                now - self._window,
                counts,
            )
            self._suppressed.clear()
        self._window = now
        self._sent = 0


class RedactingFilter(logging.Filter):
    """A handler filter: masks known secrets and any credential `name: value` pair.

    A second line of defence for log lines the gateway does not write itself; attach it to
    the handlers, where it sees every record, whichever logger made it.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text = f"{text}: {describe_exception(record.exc_info[1])}"
            record.exc_info = None
            record.exc_text = None
        clean = self.redact(text)
        if clean != record.msg or record.args:
            record.msg = clean
            record.args = None
        return True

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _CREDENTIAL_PAIR.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


def install_redaction(secrets: Iterable[str], logger: logging.Logger | None = None) -> None:
    """Give every handler of `logger` (the root logger by default) a `RedactingFilter`."""
    redactor = RedactingFilter(secrets)
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(redactor)
