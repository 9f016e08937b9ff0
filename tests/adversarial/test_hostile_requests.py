"""Hostile requests over raw sockets: what the gateway answers, and what the backend sees.

Each case states the replies expected (final statuses, in order; [] means the connection was
closed without one), whether the gateway then closes the connection, and what the echo
upstream may have received. Where aiohttp's two parsers differ and the gateway cannot hide
it, the case says so with `by_parser`, and docs/notes/issue-5-hostile-input.md explains why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from apigw.server import parser_name
from tests.support import DEMO_KEY, OTHER_KEY, PROBLEM, TEST_SECRET
from tests.support.hostile import LIMITS, USERS_MAX_BODY, Gateway
from tests.support.upstream import Seen
from tests.support.wire import chunked, request

PARSER = parser_name()

UpstreamCheck = Callable[[list[Seen]], None]


def by_parser(*, c: list[int], py: list[int]) -> list[int]:
    return c if PARSER.startswith("C") else py


def nothing(seen: list[Seen]) -> None:
    assert seen == [], f"the upstream received {[(s.method, s.raw_path) for s in seen]}"


def one(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    absent: tuple[str, ...] = (),
    present: dict[str, str] | None = None,
) -> UpstreamCheck:
    def check(seen: list[Seen]) -> None:
        assert [(s.method, s.raw_path) for s in seen] == [(method, path)]
        (got,) = seen
        if body is not None:
            assert got.body == body
        for name in absent:
            assert name not in got.headers, f"{name} reached the upstream"
        for name, value in (present or {}).items():
            assert got.headers.getall(name) == [value]
        # Whatever the client sent, the backend sees exactly the gateway's credentials.
        assert got.headers.getall("x-gateway-secret") == [TEST_SECRET]
        assert "x-api-key" not in got.headers

    return check


def parser_dependent(c: UpstreamCheck, py: UpstreamCheck) -> UpstreamCheck:
    return c if PARSER.startswith("C") else py


@dataclass(frozen=True)
class Case:
    id: str
    parts: tuple[bytes, ...]
    statuses: list[int]
    closes: bool
    upstream: UpstreamCheck
    expect: int = 1  # final replies to wait for
    pause: float = 0.0  # between parts
    headers: tuple[tuple[str, str], ...] = ()  # in the last reply


def case(
    id: str,
    payload: bytes | tuple[bytes, ...],
    statuses: list[int],
    *,
    closes: bool,
    upstream: UpstreamCheck = nothing,
    pause: float = 0.0,
    headers: tuple[tuple[str, str], ...] = (),
) -> Case:
    parts = payload if isinstance(payload, tuple) else (payload,)
    return Case(id, parts, statuses, closes, upstream, max(1, len(statuses)), pause, headers)


POST = "POST"
CL5 = "Content-Length: 5"
TE = "Transfer-Encoding: chunked"
HELLO = chunked(b"hello")
ALLOW = (("Allow", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),)

SMUGGLING = [
    case("cl-and-te", request("/users/1", CL5, TE, method=POST, body=HELLO), [400], closes=True),
    case("te-and-cl", request("/users/1", TE, CL5, method=POST, body=HELLO), [400], closes=True),
    case(
        "cl-te-with-hidden-request",
        request(
            "/users/1",
            "Content-Length: 60",
            TE,
            method=POST,
            body=b"0\r\n\r\n" + request("/orders/1", "Connection: close"),
        ),
        [400],
        closes=True,
    ),
    case(
        "duplicate-cl-same",
        request("/users/1", CL5, CL5, method=POST, body=b"hello"),
        [400],
        closes=True,
    ),
    case(
        "duplicate-cl-different",
        request("/users/1", CL5, "Content-Length: 4", method=POST, body=b"hello"),
        [400],
        closes=True,
    ),
    case(
        "cl-list",
        request("/users/1", "Content-Length: 5, 5", method=POST, body=b"hello"),
        [400],
        closes=True,
    ),
    case(
        "cl-plus-sign",
        request("/users/1", "Content-Length: +5", method=POST, body=b"hello"),
        [400],
        closes=True,
    ),
    case(
        "cl-negative",
        request("/users/1", "Content-Length: -5", method=POST, body=b"hello"),
        [400],
        closes=True,
    ),
    case(
        "cl-hex",
        request("/users/1", "Content-Length: 0x5", method=POST, body=b"hello"),
        [400],
        closes=True,
    ),
    case(
        "cl-overflow",
        request("/users/1", "Content-Length: " + "9" * 30, method=POST, body=b"hello"),
        [400],
        closes=True,
    ),
    case(
        "cl-beyond-int64",
        request("/orders/1", "Content-Length: 18446744073709551615", method=POST),
        [400],
        closes=True,
    ),
    case(
        "te-identity-chunked",
        request("/users/1", "Transfer-Encoding: identity, chunked", method=POST, body=HELLO),
        [400],
        closes=True,
    ),
    case(
        "te-gzip-chunked",
        request("/users/1", "Transfer-Encoding: gzip, chunked", method=POST, body=HELLO),
        [400],
        closes=True,
    ),
    case(
        "te-chunked-identity",
        request("/users/1", "Transfer-Encoding: chunked, identity", method=POST, body=HELLO),
        [400],
        closes=True,
    ),
    case(
        "te-unknown-coding",
        request("/users/1", "Transfer-Encoding: xchunked", method=POST, body=HELLO),
        [400],
        closes=True,
    ),
    case(
        "te-twice",
        request("/users/1", TE, TE, method=POST, body=HELLO),
        [400],
        closes=True,
    ),
    case(
        "te-space-before-colon",
        request("/users/1", "Transfer-Encoding : chunked", method=POST, body=HELLO),
        [400],
        closes=True,
    ),
    case(
        "te-on-http10",
        request(
            "/users/1", TE, "Connection: keep-alive", method=POST, version="HTTP/1.0", body=HELLO
        ),
        [400],
        closes=True,
    ),
    case(
        "te-mixed-case-is-chunked",
        request("/users/1", "Transfer-Encoding: ChUnKeD", method=POST, body=HELLO),
        [200],
        closes=False,
        upstream=one(POST, "/users/1", b"hello"),
    ),
    case(
        "chunk-size-hex-prefix",
        request("/users/1", TE, method=POST, body=b"0x5\r\nhello\r\n0\r\n\r\n"),
        [400],
        closes=True,
    ),
    case(
        "chunk-size-negative",
        request("/users/1", TE, method=POST, body=b"-5\r\nhello\r\n0\r\n\r\n"),
        [400],
        closes=True,
    ),
    case(
        "chunk-size-space",
        request("/users/1", TE, method=POST, body=b"5 \r\nhello\r\n0\r\n\r\n"),
        [400],
        closes=True,
    ),
    case(
        "chunk-bare-lf",
        request("/users/1", TE, method=POST, body=b"5\nhello\n0\n\n"),
        [400],
        closes=True,
    ),
    case(
        "chunk-longer-than-size",
        request("/users/1", TE, method=POST, body=b"2\r\nhello\r\n0\r\n\r\n"),
        [400],
        closes=True,
    ),
    case(
        "chunk-extension-is-fine",
        request("/users/1", TE, method=POST, body=b"5;name=value\r\nhello\r\n0\r\n\r\n"),
        [200],
        closes=False,
        upstream=one(POST, "/users/1", b"hello"),
    ),
    case(
        "bad-chunk-after-the-head",
        (request("/orders/1", TE, method=POST), b"5\r\nhello\r\nzz\r\n"),
        # The C parser queues the error as a next message and leaves this body hanging, so
        # the body-idle timeout answers; the pure-Python one fails the body at once.
        by_parser(c=[408], py=[400]),
        closes=True,
        pause=0.2,
    ),
    case(
        "trailer-cannot-forge-credentials",
        request(
            "/users/1",
            TE,
            method=POST,
            body=chunked(
                b"hello",
                trailers=("x-gateway-secret: forged-secret-value", f"x-api-key: {OTHER_KEY}"),
            ),
        ),
        [200],
        closes=False,
        upstream=one(POST, "/users/1", b"hello", present={"x-consumer-name": "demo"}),
    ),
    case(
        "request-hidden-after-short-body",
        request(
            "/users/1",
            "Content-Length: 4",
            method=POST,
            body=b"abcd" + request("/orders/2", "Connection: close", key=False),
        ),
        [200, 401],
        closes=True,
        upstream=one(POST, "/users/1", b"abcd"),
    ),
    case(
        "pipelined-after-a-bad-request-is-dropped",
        request("/users/1", "Content-Length: +1", method=POST, body=b"x") + request("/orders/1"),
        [400],
        closes=True,
    ),
    case(
        "bare-lf-line-endings",
        b"GET /users/1 HTTP/1.1\nHost: gw.test\nx-api-key: " + DEMO_KEY.encode() + b"\n\n",
        [400],
        closes=True,
    ),
    case(
        "bare-lf-inside-headers",
        request("/users/1", "X-A: 1\nX-B: 2"),
        [400],
        closes=True,
    ),
]

TARGETS = [
    case("absolute-form", request("http://evil.test/users/1"), [400], closes=True),
    case(
        "absolute-form-open-path",
        request("http://evil.test/healthz", key=False),
        [400],
        closes=True,
    ),
    case("authority-form", request("evil.test:80"), [400], closes=True),
    case("asterisk-form", request("*", method="OPTIONS"), [400], closes=True),
    case("raw-utf8-target", request("/users/caf\xc3\xa9"), [400], closes=True),
    case("raw-invalid-utf8-target", request("/users/\xff"), [400], closes=True),
    case("fragment-in-target", request("/users/1#x"), [400], closes=False),
    case("network-path-target", request("//evil.test/users/1"), [400], closes=False),
    case("empty-segment-hides-a-route", request("/users//admin"), [400], closes=False),
]

HOSTS = [
    case("missing-host", request(host=False), [400], closes=True),
    case(
        "missing-host-http10",
        request(host=False, version="HTTP/1.0"),
        [200],
        closes=True,
        upstream=one("GET", "/users/1", absent=("x-forwarded-host",)),
    ),
    case("empty-host", request("/users/1", "Host:", host=False), [400], closes=True),
    case("duplicate-host", request("/users/1", "Host: other.test"), [400], closes=True),
    case("host-with-space", request("/users/1", "Host: a b", host=False), [400], closes=True),
    case(
        "host-with-path", request("/users/1", "Host: evil.test/x", host=False), [400], closes=True
    ),
    case(
        "host-with-userinfo",
        request("/users/1", "Host: u@evil.test", host=False),
        [400],
        closes=True,
    ),
    case(
        "host-ipv6-literal",
        request("/users/1", "Host: [::1]:8000", host=False),
        [200],
        closes=False,
        upstream=one("GET", "/users/1", present={"x-forwarded-host": "[::1]:8000"}),
    ),
]

HEADER_VALUES = [
    case("nul-in-value", request("/users/1", "X-A: a\x00b"), [400], closes=True),
    case("cr-in-value", request("/users/1", "X-A: a\rb"), [400], closes=True),
    case("ctl-in-value", request("/users/1", "X-A: a\x01b"), [400], closes=True),
    case("del-in-value", request("/users/1", "X-A: a\x7fb"), [400], closes=True),
    case("nul-in-name", request("/users/1", "X-\x00A: a"), [400], closes=True),
    case("obs-fold", request("/users/1", "X-A: a", " folded"), [400], closes=True),
    case("space-before-colon", request("/users/1", "X-A : a"), [400], closes=True),
    case("empty-name", request("/users/1", ": a"), [400], closes=True),
    case("separator-in-name", request("/users/1", "X(A): a"), [400], closes=True),
    case(
        "malformed-line-holding-the-key",
        request("/users/1", f"x-api-key {DEMO_KEY}", key=False),
        [400],
        closes=True,
    ),
    case("invalid-utf8-value", request("/users/1", "X-A: \xff\xfe"), [400], closes=True),
    case(
        "utf8-value-is-forwarded",
        request("/users/1", "X-A: caf\xc3\xa9"),
        [200],
        closes=False,
        upstream=one("GET", "/users/1", present={"x-a": "café"}),
    ),
    case(
        "tab-in-value-is-fine",
        request("/users/1", "X-A: a\tb"),
        [200],
        closes=False,
        upstream=one("GET", "/users/1", present={"x-a": "a\tb"}),
    ),
    case(
        "connection-cannot-remove-the-secret",
        request("/users/1", "Connection: x-gateway-secret, x-consumer-name"),
        [200],
        closes=False,
        upstream=one("GET", "/users/1", present={"x-consumer-name": "demo"}),
    ),
    case(
        "client-secret-and-consumer-are-replaced",
        request("/users/1", "x-gateway-secret: forged-secret-value", "x-consumer-name: admin"),
        [200],
        closes=False,
        upstream=one("GET", "/users/1", present={"x-consumer-name": "demo"}),
    ),
]

METHODS = [
    case(
        "lower-case-method",
        request(method="get"),
        by_parser(c=[400], py=[200]),
        closes=PARSER.startswith("C"),
        # The pure-Python parser upper-cases methods: `get` becomes GET.
        upstream=parser_dependent(nothing, one("GET", "/users/1")),
    ),
    case("unknown-method", request(method="FOO"), [400], closes=True),
    case("non-token-method", request(method="G@T"), [400], closes=True),
    case("trace-is-refused", request(method="TRACE"), [405], closes=True, headers=ALLOW),
    case(
        "connect-is-refused",
        request("evil.test:443", method="CONNECT"),
        [405],
        closes=True,
        headers=ALLOW,
    ),
    case("webdav-is-refused", request(method="PROPFIND"), [405], closes=True, headers=ALLOW),
    case("query-is-refused", request(method="QUERY"), [405], closes=True, headers=ALLOW),
    case(
        "head-is-forwarded",
        request(method="HEAD"),
        [200],
        closes=False,
        upstream=one("HEAD", "/users/1"),
    ),
    case(
        "tls-handshake",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
        [400],
        closes=True,
    )
    if PARSER.startswith("C")
    # The pure-Python parser waits for a line end; the idle timeout closes the connection.
    else case("tls-handshake", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", [], closes=True),
    case("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [400], closes=True),
]

VERSIONS = [
    case("http20-request-line", request(version="HTTP/2.0"), [505], closes=True),
    case("http12", request(version="HTTP/1.2"), [400], closes=True),
    case("http09", b"GET /users/1\r\n\r\n", [400], closes=True),
    case("lower-case-version", request(version="http/1.1"), [400], closes=True),
    case(
        "http10-is-served",
        request(version="HTTP/1.0"),
        [200],
        closes=True,
        upstream=one("GET", "/users/1"),
    ),
]

EXPECT = [
    case(
        "expect-unknown",
        request("/users/1", "Expect: bananas", "Content-Length: 2", method=POST, body=b"hi"),
        [417],
        closes=False,
    ),
    case(
        "expect-continue-mixed-case",
        request("/users/1", "Expect: 100-Continue", "Content-Length: 2", method=POST, body=b"hi"),
        [200],
        closes=False,
        upstream=one(POST, "/users/1", b"hi", absent=("expect",)),
    ),
    case(
        "expect-continue-without-key",
        request("/users/1", "Expect: 100-continue", "Content-Length: 2", method=POST, key=False),
        [401],
        closes=True,
    ),
    case(
        "expect-continue-over-the-body-limit",
        request(
            "/users/1",
            "Expect: 100-continue",
            f"Content-Length: {USERS_MAX_BODY + 1}",
            method=POST,
        ),
        [413],
        closes=True,
    ),
]

UPGRADES = [
    case(
        "websocket-upgrade-is-ignored-where-websockets-are-off",
        request(
            "/orders/1",
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ),
        [200],
        closes=False,
        upstream=one("GET", "/orders/1", absent=("upgrade", "connection")),
    ),
    case(
        "websocket-handshake-refused-by-the-backend-is-relayed-never-switched",
        request(
            "/users/1",
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ),
        # The echo backend answers 200, not 101: the client gets that answer, not upgraded.
        [200],
        closes=False,
        upstream=one("GET", "/users/1", present={"upgrade": "websocket"}),
    ),
    case(
        "websocket-handshake-without-version-is-426",
        request(
            "/users/1",
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        ),
        [426],
        closes=True,
    ),
    case(
        "websocket-handshake-with-a-bad-key-is-400",
        request(
            "/users/1",
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Key: c2hvcnQ=",
            "Sec-WebSocket-Version: 13",
        ),
        [400],
        closes=False,
    ),
    case(
        "websocket-handshake-as-post-is-400",
        request(
            "/users/1",
            "Connection: Upgrade",
            "Upgrade: websocket",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
            method="POST",
        ),
        [400],
        closes=False,
    ),
    case(
        "h2c-upgrade-is-ignored",
        request(
            "/users/1",
            "Connection: Upgrade, HTTP2-Settings",
            "Upgrade: h2c",
            "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        ),
        [200],
        closes=False,
        upstream=one("GET", "/users/1", absent=("upgrade", "http2-settings", "connection")),
    ),
    case(
        "h2c-settings-without-connection-is-dropped",
        request("/users/1", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"),
        [200],
        closes=False,
        upstream=one("GET", "/users/1", absent=("upgrade", "http2-settings")),
    ),
    case(
        "frames-after-a-refused-handshake-are-not-tunnelled",
        request("/users/1", "Connection: Upgrade", "Upgrade: websocket")
        + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        # No Sec-WebSocket-Version: 426, the connection closes, the frame is never read.
        [426],
        closes=True,
    ),
    case(
        "frames-after-an-ignored-upgrade-are-not-tunnelled",
        request("/orders/1", "Connection: Upgrade", "Upgrade: websocket")
        + b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        # The C parser reads the frame as a next request (400); the pure-Python one holds it
        # as the upgrade's stream, and drops it when the connection closes.
        by_parser(c=[200, 400], py=[200]),
        closes=True,
        upstream=one("GET", "/orders/1", b""),
    ),
]

LINE = LIMITS["max_request_line"]
FIELD = LIMITS["max_header_field"]
COUNT = LIMITS["max_headers"]
TOTAL = LIMITS["max_header_bytes"]
BASE_FIELDS = (len("Host") + len("gw.test"), len("x-api-key") + len(DEMO_KEY))


def target_of_line(length: int, method: str = "GET") -> str:
    """A /users target whose request line is exactly `length` bytes."""
    return "/users/" + "a" * (length - len(method) - len(" /users/ HTTP/1.1"))


def field_of(size: int, name: str = "X-Pad") -> str:
    """A header whose name and value are `size` bytes together."""
    return f"{name}: " + "v" * (size - len(name))


def fields_totalling(total: int) -> list[str]:
    """Header lines that, with Host and the key, make `total` bytes (name + value + 4 each)."""
    left = total - sum(size + 4 for size in BASE_FIELDS)
    lines = []
    i = 0
    while left > 0:
        size = min(FIELD, left - 4)
        name = f"X-F{i}"
        lines.append(field_of(size, name))
        left -= size + 4
        i += 1
    return lines


LIMIT_CASES = [
    case(
        "request-line-at-limit",
        request(target_of_line(LINE)),
        [200],
        closes=False,
        upstream=one("GET", target_of_line(LINE)),
    ),
    case("request-line-over-limit", request(target_of_line(LINE + 1)), [414], closes=True),
    case("request-line-far-over-limit", request(target_of_line(LINE * 8)), [414], closes=True),
    case(
        "header-field-at-limit",
        request("/users/1", field_of(FIELD)),
        [200],
        closes=False,
        upstream=one("GET", "/users/1"),
    ),
    case("header-field-over-limit", request("/users/1", field_of(FIELD + 1)), [431], closes=True),
    case(
        "header-field-far-over-limit", request("/users/1", field_of(FIELD * 8)), [431], closes=True
    ),
    case(
        "header-count-at-limit",
        request("/users/1", *(f"X-N{i}: 1" for i in range(COUNT - 2))),
        [200],
        closes=False,
        upstream=one("GET", "/users/1"),
    ),
    case(
        "header-count-over-limit",
        request("/users/1", *(f"X-N{i}: 1" for i in range(COUNT - 1))),
        [431],
        closes=True,
    ),
    case(
        "header-count-far-over-limit",
        request("/users/1", *(f"X-N{i}: 1" for i in range(COUNT * 5))),
        [431],
        closes=True,
    ),
    case(
        "header-bytes-at-limit",
        request("/users/1", *fields_totalling(TOTAL)),
        [200],
        closes=False,
        upstream=one("GET", "/users/1"),
    ),
    case(
        "header-bytes-over-limit",
        request("/users/1", *fields_totalling(TOTAL + 1)),
        [431],
        closes=True,
    ),
    case(
        "body-at-limit",
        request(
            "/users/1",
            f"Content-Length: {USERS_MAX_BODY}",
            method=POST,
            body=b"b" * USERS_MAX_BODY,
        ),
        [200],
        closes=False,
        upstream=one(POST, "/users/1", b"b" * USERS_MAX_BODY),
    ),
    case(
        "body-length-over-limit-before-any-byte",
        request("/users/1", f"Content-Length: {USERS_MAX_BODY + 1}", method=POST),
        [413],
        closes=True,
    ),
    case(
        "chunked-body-at-limit",
        request("/users/1", TE, method=POST, body=chunked(b"c" * 600, b"c" * 400)),
        [200],
        closes=False,
        upstream=one(POST, "/users/1", b"c" * USERS_MAX_BODY),
    ),
    case(
        "chunked-body-passes-limit-mid-stream",
        (
            request("/users/1", TE, method=POST, body=b"258\r\n" + b"c" * 600 + b"\r\n"),
            b"191\r\n" + b"c" * 401 + b"\r\n0\r\n\r\n",
        ),
        [413],
        closes=True,
        pause=0.2,
    ),
    case(
        "body-stalls",
        (request("/orders/1", "Content-Length: 10", method=POST, body=b"12345"),),
        [408],
        closes=True,
    ),
    case(
        "chunked-body-stalls",
        (request("/orders/1", TE, method=POST, body=b"5\r\nhello\r\n"),),
        [408],
        closes=True,
    ),
]

CASES = [
    *SMUGGLING,
    *TARGETS,
    *HOSTS,
    *HEADER_VALUES,
    *METHODS,
    *VERSIONS,
    *EXPECT,
    *UPGRADES,
    *LIMIT_CASES,
]


def test_case_ids_are_unique() -> None:
    # pytest would rename a repeated id (x0, x1): the notes and reports name cases by id.
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("hostile", CASES, ids=[c.id for c in CASES])
async def test_hostile_request(gw: Gateway, hostile: Case) -> None:
    head = hostile.parts[0].startswith(b"HEAD ")
    result = await gw.send(
        *hostile.parts,
        pause=hostile.pause,
        expect=hostile.expect,
        head=head,
        # Long enough for the gateway's lingering close; it returns as soon as it closes.
        linger=1.5 if hostile.closes else 0.0,
        # A connection the gateway keeps must answer the next request.
        probe=b"" if hostile.closes else request("/healthz", key=False),
    )
    assert result.statuses == hostile.statuses, result.raw[:300]
    for reply in result.replies:
        if reply.status >= 400:
            assert reply.headers["Content-Type"] == PROBLEM
            if not head:
                assert b'"request_id"' in reply.body
        # No interim 100 unless the request was accepted and routed.
        if reply.status == 100:
            assert result.statuses == [200]
        assert reply.status != 101, "the gateway switched protocols"
    for name, value in hostile.headers:
        assert result.replies[-1].headers.get(name) == value
    if hostile.closes:
        assert result.closed, "the gateway kept the connection open"
    else:
        assert not result.closed, "the gateway closed a connection it could keep"
    hostile.upstream(gw.upstream.seen)
