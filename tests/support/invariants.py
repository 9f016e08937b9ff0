"""What must hold for any input to path checking and header filtering.

Shared by the hypothesis property tests (tests/gateway/test_properties.py) and the atheris fuzz
target (fuzz/fuzz_paths_headers.py), so both search for the same failures.
"""

from __future__ import annotations

import posixpath

from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from apigw.routing import RouteTable, check_target
from apigw.shared.errors import ProblemError
from apigw.shared.headers import (
    API_KEY_HEADER,
    CONSUMER_HEADER,
    GATEWAY_SECRET_HEADER,
    HOP_BY_HOP,
    REQUEST_ID_HEADER,
    downstream_response_headers,
    line_pairs,
    upstream_request_headers,
)

PREFIXES = ("/users", "/orders", "/users/admin", "/a.b")
TABLE: RouteTable[str] = RouteTable({p: p for p in PREFIXES})
SECRET = "invariant-gateway-secret-0123456789"
CONSUMER = "demo"
REQUEST_ID = "rid-0001"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
BACKEND = "http://backend.test:8001"

# Pieces that path attacks are made of, for generators to combine.
PATH_PIECES = (
    "/", "//", ".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "%2f", "%2F", "%5c", "%5C", "\\", "?",
    "#", "%3f", "%3F", "%23", "%00", "%", "%25", "%252e", "%252f", "%c0%ae", "%ff", "%c3%a9",
    ";", "~", "%41", " ", "\x00", "\n", "\r", "\t", "a", "b", "1", "users", "orders", "admin",
    "x=1", "&", "@", ":", "http:", "é",
)  # fmt: skip

# Header names that header attacks are made of.
HEADER_NAMES = (
    "x-gateway-secret", "X-Gateway-Secret", "x-api-key", "X-API-KEY", "x-consumer-name",
    "x-request-id", "connection", "Connection", "keep-alive", "proxy-connection", "te",
    "trailer", "transfer-encoding", "upgrade", "http2-settings", "proxy-authorization",
    "proxy-authenticate", "host", "content-length", "expect", "x-forwarded-for",
    "x-forwarded-host", "x-forwarded-proto", "forwarded", "set-cookie", "x-custom",
    "accept", "cookie",
)  # fmt: skip

GATEWAY_SET = frozenset(
    n.lower()
    for n in (
        GATEWAY_SECRET_HEADER,
        CONSUMER_HEADER,
        REQUEST_ID_HEADER,
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-consumer-plan",
        "traceparent",
    )
)


def check_target_invariants(raw_target: str) -> None:
    """Either the target is refused with a 400, or no reading of it leaves its route's prefix."""
    try:
        decoded = check_target(raw_target)
    except ProblemError as exc:
        assert exc.status == 400
        return
    raw_path, _, raw_query = raw_target.partition("?")
    # Nothing in the checked path that a backend would split on or stop at.
    for forbidden in ("?", "#", "\\", "\x00", "\r", "\n"):
        assert forbidden not in decoded, (raw_target, decoded)
    segments = decoded.split("/")
    assert "." not in segments and ".." not in segments, (raw_target, decoded)
    route = TABLE.match(decoded)
    if route is None:
        return
    assert decoded == route or decoded.startswith(route + "/"), (raw_target, route)
    # A backend that resolves dot-segments routes it the same way.
    assert TABLE.match(posixpath.normpath(decoded)) == route, (raw_target, decoded)
    # The URL the proxy builds carries the raw path and query unchanged, and yarl's
    # own decoding of it stays under the prefix too.
    url = URL(BACKEND + raw_target, encoded=True)
    assert url.raw_path == raw_path, (raw_target, url.raw_path)
    assert url.raw_query_string == raw_query
    assert url.fragment == ""
    assert TABLE.match(url.path) == route, (raw_target, url.path)


def _connection_named(headers: CIMultiDictProxy[str]) -> set[str]:
    return {
        token.strip().lower()
        for value in headers.getall("connection", ())
        for token in value.split(",")
        if token.strip()
    }


def check_header_invariants(pairs: list[tuple[str, str]]) -> None:
    """No header set sent by a client removes or forges the secret, in either direction."""
    incoming = CIMultiDictProxy(CIMultiDict(pairs))
    headers, lines = upstream_request_headers(
        incoming,
        secret=SECRET,
        consumer=CONSUMER,
        request_id=REQUEST_ID,
        client_ip="192.0.2.1",
        scheme="http",
        plan="free",
        traceparent=TRACEPARENT,
    )
    # What the backend receives: the client's headers that pass, then the gateway's lines.
    out = CIMultiDict(headers)
    out.extend(line_pairs(lines))
    assert out.getall(GATEWAY_SECRET_HEADER) == [SECRET]
    assert out.getall(CONSUMER_HEADER) == [CONSUMER]
    assert out.getall(REQUEST_ID_HEADER) == [REQUEST_ID]
    assert out.getall("traceparent") == [TRACEPARENT]
    assert API_KEY_HEADER not in out
    for hop in HOP_BY_HOP:
        assert hop not in out, hop
    for named in _connection_named(incoming) - GATEWAY_SET:
        assert named not in out, named
    # Everything else that goes out is something the client sent, unchanged.
    sent = {(k.lower(), v) for k, v in incoming.items()}
    for name, value in out.items():
        if name.lower() not in GATEWAY_SET:
            assert (name.lower(), value) in sent, name

    # The same set as an upstream's response: no secret and no hop-by-hop header goes back.
    back = downstream_response_headers(incoming, REQUEST_ID, "apigw")
    assert GATEWAY_SECRET_HEADER not in back
    assert back.getall(REQUEST_ID_HEADER) == [REQUEST_ID]
    for hop in HOP_BY_HOP:
        assert hop not in back, hop
    for named in _connection_named(incoming) - {REQUEST_ID_HEADER.lower()}:
        assert named not in back, named
    if "set-cookie" not in _connection_named(incoming):
        assert back.getall("set-cookie", []) == incoming.getall("set-cookie", [])
