"""The shape and size a request must have before the gateway spends anything on it.

aiohttp's parser refuses most malformed input itself (apigw/server.py answers for it); this
checks what it lets through: framing it tolerates, Host syntax, methods and versions, and the
gateway's exact size limits, which do not depend on the parser (C or pure Python) in use.
"""

from __future__ import annotations

import re
from itertools import chain

from aiohttp import HttpVersion10, HttpVersion11, hdrs, web
from aiohttp.typedefs import RawHeaders

from apigw.config import ServerLimits
from apigw.shared.errors import ProblemError

# The methods the gateway forwards; every other known method is refused here with 405.
FORWARDED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ALLOW = ", ".join(sorted(FORWARDED_METHODS))

# Every request method llhttp (aiohttp's C parser) knows. The C parser refuses any other with
# a 400; the pure-Python parser lets every token through, so the gate refuses them the same way.
KNOWN_METHODS = FORWARDED_METHODS | frozenset(
    {
        "ACL",
        "BIND",
        "CHECKOUT",
        "CONNECT",
        "COPY",
        "LINK",
        "LOCK",
        "M-SEARCH",
        "MERGE",
        "MKACTIVITY",
        "MKCALENDAR",
        "MKCOL",
        "MOVE",
        "NOTIFY",
        "PROPFIND",
        "PROPPATCH",
        "PURGE",
        "QUERY",
        "REBIND",
        "REPORT",
        "SEARCH",
        "SOURCE",
        "SUBSCRIBE",
        "TRACE",
        "UNBIND",
        "UNLINK",
        "UNLOCK",
        "UNSUBSCRIBE",
    }
)
# A DNS name, IPv4 address or bracketed IPv6 literal, with an optional port.
_HOST = re.compile(r"(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
# " " + " " + "HTTP/1.1" around the method and the target.
_REQUEST_LINE_OVERHEAD = 10
# ": " and CRLF around each header field, counted towards the header section size.
_FIELD_OVERHEAD = 4
_MAX_CONTENT_LENGTH = (1 << 63) - 1
_RETRY_AFTER: dict[str, str] = {hdrs.RETRY_AFTER: "1"}
# Valid Host values remembered (RequestGate._hosts).
_HOSTS_KEPT = 64


class RequestGate:
    """Checks each request head against the limits, and counts the requests in flight."""

    __slots__ = (
        "_hosts",
        "_max_field",
        "_max_header_bytes",
        "_max_headers",
        "_max_line",
        "draining",
        "in_flight",
        "max_in_flight",
    )

    def __init__(self, limits: ServerLimits) -> None:
        self._max_line = limits.max_request_line
        self._max_field = limits.max_header_field
        self._max_header_bytes = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self.max_in_flight = limits.max_in_flight
        self.in_flight = 0
        # Set once SIGTERM starts the drain (lifecycle.py).
        self.draining = False
        # Host values already found valid: the few names a gateway is reached by cost one set
        # lookup instead of a regex match per request. Bounded (_HOSTS_KEPT).
        self._hosts: set[str] = set()

    def enter(self, request: web.BaseRequest) -> None:
        """Count the request in flight (`leave()` takes it back), or raise a `ProblemError`
        (which closes the connection): for a head the gateway refuses, then with a 503 when
        at the in-flight cap. One call for both: it runs on every request."""
        # The head as aiohttp's parser made it, read field by field in C: each of
        # request.version, .method, .raw_path, .raw_headers and .headers is a cached-property
        # lookup (or a call) for the same value. Reaches into aiohttp:
        # tests/gateway/test_request_gate_internals.py fails if they ever differ.
        message = request._message
        version = message.version
        if version != HttpVersion11 and version != HttpVersion10:
            if version.major >= 2:
                raise ProblemError(505, "Only HTTP/1.0 and HTTP/1.1 are supported.", close=True)
            raise ProblemError(400, "The HTTP version is not valid.", close=True)
        method = message.method
        if method not in FORWARDED_METHODS:
            if method in KNOWN_METHODS:
                raise ProblemError(
                    405,
                    f"The gateway does not forward {method}.",
                    headers={hdrs.ALLOW: ALLOW},
                    close=True,
                )
            raise ProblemError(400, "The request method is not valid.", close=True)
        target = message.path
        # A slice, not startswith(): str.startswith parses its arguments the slow way.
        if target[:1] != "/":
            raise ProblemError(
                400, "The request target must be a path starting with '/'.", close=True
            )
        if not target.isascii():
            raise ProblemError(
                400, "The request target must be ASCII (percent-encode the rest).", close=True
            )
        if len(method) + len(target) + _REQUEST_LINE_OVERHEAD > self._max_line:
            raise ProblemError(
                414, f"The request line is longer than {self._max_line} bytes.", close=True
            )
        fields = message.raw_headers
        # Every name and value joined, in C: when all of it is ASCII and fits in one field, no
        # field can be too long or hold bad UTF-8, and only the count and total are left.
        joined = b"".join(chain.from_iterable(fields))
        if (
            len(joined) > self._max_field
            or not joined.isascii()
            or len(fields) > self._max_headers
            or len(joined) + _FIELD_OVERHEAD * len(fields) > self._max_header_bytes
        ):
            self._check_fields(fields)
        headers = message.headers
        host = headers.get(hdrs.HOST)
        if host is not None and host not in self._hosts:
            self._check_host(host)
        coding = headers.get(hdrs.TRANSFER_ENCODING)
        if coding is not None and (version != HttpVersion11 or coding.strip().lower() != "chunked"):
            # Anything but a lone `chunked` on HTTP/1.1 is ambiguous framing: a front proxy
            # may have read the body differently, so nothing on this connection is trusted.
            raise ProblemError(
                400, "Only 'Transfer-Encoding: chunked' on HTTP/1.1 is accepted.", close=True
            )
        # The header rather than request.content_length: the same int(), without a property
        # call on every request.
        length = headers.get(hdrs.CONTENT_LENGTH)
        if length is not None and int(length) > _MAX_CONTENT_LENGTH:
            raise ProblemError(400, "The Content-Length is not a valid length.", close=True)
        if self.in_flight >= self.max_in_flight:
            raise ProblemError(
                503,
                "The gateway is at capacity; retry shortly.",
                headers=_RETRY_AFTER,
                close=True,
                reason="overloaded",
            )
        self.in_flight += 1

    def _check_fields(self, fields: RawHeaders) -> None:
        """The header fields one by one, for a head the joined check could not clear."""
        if len(fields) > self._max_headers:
            raise ProblemError(
                431, f"More than {self._max_headers} header fields were sent.", close=True
            )
        total = self._check_each_field(fields)
        if total + _FIELD_OVERHEAD * len(fields) > self._max_header_bytes:
            raise ProblemError(
                431,
                f"The header fields are larger than {self._max_header_bytes} bytes in all.",
                close=True,
            )

    def _check_host(self, host: str) -> None:
        if _HOST.fullmatch(host) is None:
            raise ProblemError(400, "The Host header is not a valid host.", close=True)
        if len(self._hosts) >= _HOSTS_KEPT:
            # Many distinct names (a scan, or an attack): start over rather than grow.
            self._hosts.clear()
        self._hosts.add(host)

    def _check_each_field(self, fields: RawHeaders) -> int:
        max_field = self._max_field
        total = 0
        for name, value in fields:
            size = len(name) + len(value)
            if size > max_field:
                raise ProblemError(
                    431, f"A header field is longer than {max_field} bytes.", close=True
                )
            total += size
            if not value.isascii():
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    # It could not be forwarded byte for byte: refuse it rather than guess.
                    raise ProblemError(
                        400, "A header value is not valid UTF-8.", close=True
                    ) from None
        return total

    def leave(self) -> None:
        self.in_flight -= 1
