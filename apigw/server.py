"""The gateway's HTTP server: parser limits, answers to what the parser rejects, a quiet log.

aiohttp answers a request its parser rejects with a text/plain 400 that quotes the offending
bytes, and logs them at ERROR with a traceback: a malformed line holding an API key ends up in
the body and in the log, and a flood of garbage floods the log. Its size limits answer 400, not
414/431, and count differently in the C and the pure-Python parser. Here the parser's limits
are a backstop just above the gateway's own (apigw/limits.py checks those exactly), and a
`ServerLog` answers parse errors with problem+json and logs one redacted, rate-limited line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

from aiohttp import hdrs, http_parser, web
from aiohttp.http_exceptions import BadHttpMessage, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from apigw.config import ServerLimits
from apigw.shared.errors import problem_response
from apigw.shared.headers import request_id_from
from apigw.shared.logs import RateLimitedLog, describe_exception

# Room for the whitespace around a header value, which the parsers count and the gate does not.
_FIELD_SLACK = 64
# The pure-Python parser counts the request line and the empty line among its "headers".
log = logging.getLogger("apigw")
_HEADER_COUNT_SLACK = 2


def parser_name() -> str:
    """Which HTTP parser aiohttp uses in this process (the pure-Python one is used silently)."""
    if http_parser.HttpRequestParser is http_parser.HttpRequestParserPy:
        return "pure Python"
    return "C (llhttp)"


async def report_parser(app: web.Application) -> None:
    name = parser_name()
    if name == "pure Python":
        log.warning("HTTP parser: %s (aiohttp's C extension is missing or disabled)", name)
    else:
        log.info("HTTP parser: %s", name)


def server_args(limits: ServerLimits, server_header: str) -> dict[str, Any]:
    """`handler_args` for the gateway's Application: they apply under run_app and gunicorn."""
    line = limits.max_request_line
    field = limits.max_header_field + _FIELD_SLACK
    if field == line:
        field += 1  # the two limits must differ: a LineTooLong is told apart by its limit
    return {
        # Bodies are forwarded as sent; decompressing would break Content-Length and encoding.
        "auto_decompress": False,
        # Idle keep-alive connections close after this; so does one whose head is still
        # trickling in, since the timer runs from the connection's start or last response.
        "keepalive_timeout": limits.idle_timeout,
        # aiohttp's default (10 s) holds a refused or stalled upload's connection that long.
        "lingering_time": limits.lingering_time,
        "max_line_size": line,
        "max_field_size": field,
        "max_headers": limits.max_headers + _HEADER_COUNT_SLACK,
        "logger": ServerLog(line_limit=line, server_header=server_header),
    }


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """The logger aiohttp's server gets; it also answers the requests its parser rejects.

    Nothing a client sent reaches a log line: exceptions are logged by type and stack only.
    """

    def __init__(
        self, *, line_limit: int, server_header: str, logger: logging.Logger | None = None
    ) -> None:
        super().__init__(logger or logging.getLogger("apigw.server"), {})
        self._line_limit = line_limit
        self._server_header = server_header
        self.rejections = RateLimitedLog(self.logger)
        # Told of each answer given here (the gateway's metrics count them; see exchange.py).
        self.on_answer: Callable[[int], None] | None = None

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        exc = kwargs.pop("exc_info", None)
        if exc is True:
            exc = sys.exc_info()[1]
        if isinstance(exc, BaseException):
            msg = f"{msg}: {describe_exception(exc)}"
        elif exc:
            msg = f"{msg} (exception details withheld)"
        return msg, kwargs

    def answer(
        self, request: web.BaseRequest, status: int, exc: BaseException | None
    ) -> web.StreamResponse:
        """What `RequestHandler.handle_error` returns: problem+json, and the connection closed."""
        if request.writer.output_size > 0:
            # aiohttp's own contract: a started response cannot be replaced, the caller aborts.
            raise ConnectionError("Response is sent already, cannot send another response")
        status, detail = self.classify(status, exc)
        kind = type(exc).__name__ if exc is not None else "error"
        if status >= 500:
            self.rejections.log(
                logging.ERROR,
                kind,
                "%d answering a request from %s: %s",
                status,
                request.remote,
                describe_exception(exc) if exc is not None else "no exception",
            )
        else:
            self.rejections.log(
                logging.WARNING,
                kind,
                "%d for a malformed request from %s (%s)",
                status,
                request.remote,
                kind,
            )
        if self.on_answer is not None:
            self.on_answer(status)
        response = problem_response(status, detail, request_id_from(None))
        response.headers[hdrs.SERVER] = self._server_header
        response.force_close()
        return response

    def classify(self, status: int, exc: BaseException | None) -> tuple[int, str]:
        """The status and a fixed detail for an error; the detail never quotes the request."""
        if isinstance(exc, LineTooLong):
            if exc.args[1] == self._line_limit:
                return 414, "The request line is too long."
            return 431, "A header field is too long."
        if isinstance(exc, BadHttpMessage) and exc.message == "Too many headers received":
            return 431, "Too many header fields were sent."
        if isinstance(exc, HttpProcessingError):
            return 400, "The request could not be parsed as HTTP/1.1."
        if status == 504:
            return 504, "The request took too long."
        return 500, "Internal error."


def _handle_error(
    self: RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    log = self.logger
    if isinstance(log, ServerLog):
        return log.answer(request, status, exc)
    return _AIOHTTP_HANDLE_ERROR(self, request, status, exc, message)


_AIOHTTP_HANDLE_ERROR = RequestHandler.handle_error


def install_error_answers() -> None:
    """Route aiohttp's parse-error answers through `ServerLog.answer` (idempotent).

    aiohttp has no hook for them: `RequestHandler.handle_error` builds its text/plain reply.
    The replacement only acts for servers whose logger is a `ServerLog` (the gateway's, set
    through `handler_args`) and calls aiohttp's own for every other server in the process.
    """
    if RequestHandler.handle_error is not _handle_error:
        RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]
