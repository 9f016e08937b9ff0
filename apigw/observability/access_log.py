"""The access log: one JSON line per request, written by a thread, never by the event loop.

The loop serialises the line (orjson, one C call) and appends it to a bounded list; a writer
thread wakes every few hundred lines or 0.2 s and writes them out, packed into writes of at
most 4096 bytes that each end on a line boundary. A write to a pipe that small is atomic, so
workers sharing stderr never interleave halves of lines. When the sink is slow or blocked the
list fills and further lines are dropped and counted (`gateway_access_log_dropped_total`):
a request never waits for the log.

What is logged is an allow-list of fields the gateway computed itself; no header value but a
truncated User-Agent, and the path without its query.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import orjson

from apigw.config.observability import STDERR, AccessLogSettings

log = logging.getLogger("apigw.access_log")

# PIPE_BUF on Linux: a write of at most this many bytes to a pipe is never split.
MAX_WRITE = 4096
MAX_PATH = 1024
MAX_USER_AGENT = 256
MAX_LABEL = 256
_WAKE_AT = 256
_FLUSH_INTERVAL = 0.2
# How long stopping waits for the last lines to be written (a blocked sink is abandoned).
_STOP_TIMEOUT = 2.0


# The fields of a line, in their order (README, "Access log").
FIELDS = (
    "time",
    "request_id",
    "trace_id",
    "span_id",
    "consumer",
    "route",
    "method",
    "path",
    "status",
    "source",
    "reason",
    "bytes_in",
    "bytes_out",
    "upstream",
    "upstream_status",
    "attempts",
    "duration_ms",
    "upstream_ms",
    "client_ip",
    "user_agent",
)
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


class Clock:
    """ISO 8601 UTC timestamps with milliseconds; the seconds part is formatted once a second,
    the milliseconds come from a table (a format call per line costs more than the rest)."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        second, millis = divmod(time.time_ns() // 1_000_000, 1000)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._prefix + _MILLIS[millis]


def encode(record: dict[str, Any]) -> bytes:
    """One line (with its newline) of at most MAX_WRITE bytes."""
    try:
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        # Bytes that are not UTF-8 (aiohttp's pure-Python parser keeps them in the path as
        # lone surrogates): logged escaped, as \udcff, rather than not at all.
        record = {k: _escaped(v) if isinstance(v, str) else v for k, v in record.items()}
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    if len(line) <= MAX_WRITE:
        return line
    # Only client-chosen text can make a line long (escaped control or multi-byte characters).
    shorter = dict(record)
    for key, limit in (("path", 128), ("user_agent", 64)):
        if isinstance(shorter.get(key), str):
            shorter[key] = shorter[key][:limit]
    line = orjson.dumps(shorter, option=orjson.OPT_APPEND_NEWLINE)
    if len(line) <= MAX_WRITE:
        return line
    shorter["path"] = shorter["user_agent"] = None
    return orjson.dumps(shorter, option=orjson.OPT_APPEND_NEWLINE)


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class AccessLog:
    """The bounded queue and its writer thread; `write` is what a request costs."""

    def __init__(self, settings: AccessLogSettings) -> None:
        self.target = settings.target
        self.max_lines = settings.queue
        self.dropped = 0
        self.clock = Clock()
        # Filled in by Observer.finish for each request, serialised at once by write().
        self.record: dict[str, Any] = dict.fromkeys(FIELDS)
        self._lines: list[bytes] = []
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def write(self, record: dict[str, Any]) -> None:
        lines = self._lines
        if len(lines) >= self.max_lines:
            self.dropped += 1
            return
        # encode()'s first step inline (a call costs more than the rest of this method); a
        # line it would escape or shorten goes to encode() whole.
        try:
            line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        except orjson.JSONEncodeError:
            line = encode(record)
        if len(line) > MAX_WRITE:
            line = encode(record)
        lines.append(line)
        if len(lines) == _WAKE_AT:
            self._wake.set()

    def start(self) -> None:
        """In the worker process (after any fork): a thread never survives a fork."""
        self._thread = threading.Thread(target=self._run, name="access-log", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)

    def _open(self) -> int:
        if self.target == STDERR:
            return 2
        # Opened by the thread: opening a FIFO with no reader blocks until one comes.
        return os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def _run(self) -> None:
        try:
            fd = self._open()
        except OSError as exc:
            log.error("access log %s cannot be opened: %s; lines are dropped", self.target, exc)
            self.max_lines = 0
            self._lines.clear()
            return
        try:
            while True:
                self._wake.wait(_FLUSH_INTERVAL)
                self._wake.clear()
                self._drain(fd)
                if self._stopping:
                    self._drain(fd)
                    return
        except OSError as exc:
            log.error("access log %s failed: %s; lines are dropped from now", self.target, exc)
            self.max_lines = 0
            self._lines.clear()
        finally:
            if fd != 2:
                os.close(fd)

    def _drain(self, fd: int) -> None:
        lines = self._lines
        # The lines queued now, taken and removed with one C operation each, so no Python runs
        # per line here: the loop only appends at the end (list.append is atomic), and only
        # this thread removes, from the front.
        taken = len(lines)
        data = b"".join(lines[:taken])
        del lines[:taken]
        # Cut into writes of at most MAX_WRITE bytes, each after a newline: every line ends in
        # one and is at most MAX_WRITE long (encode), so a write never splits a line. Cutting
        # the joined bytes costs a few calls per write instead of a few lines per line.
        view = memoryview(data)
        start = 0
        while len(data) - start > MAX_WRITE:
            end = data.rfind(b"\n", start, start + MAX_WRITE) + 1
            _write_all(fd, view[start:end])
            start = end
        if start < len(data):
            _write_all(fd, view[start:])


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        written = os.write(fd, view)
        view = view[written:]
