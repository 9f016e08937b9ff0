"""Header functions: the gateway's own headers are added after the client's are stripped."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from apigw.shared.headers import (
    downstream_response_headers,
    line_pairs,
    upstream_request_headers,
    with_traceparent,
)
from tests.support import DEMO_KEY, TEST_SECRET

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def headers_of(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    """Headers as aiohttp hands them over: read-only, case-insensitive, repeats kept."""
    return CIMultiDictProxy(CIMultiDict(pairs))


def upstream_parts(
    incoming: CIMultiDictProxy[str],
    scheme: str,
    client_ip: str | None = "10.0.0.1",
    tracestate: str | None = None,
) -> tuple[CIMultiDict[str], str]:
    """The two parts of what the demo consumer's request, id "rid", sends its backend."""
    return upstream_request_headers(
        incoming,
        secret=TEST_SECRET,
        consumer="demo",
        plan="free",
        request_id="rid",
        client_ip=client_ip,
        scheme=scheme,
        traceparent=TRACEPARENT,
        tracestate=tracestate,
    )


def to_upstream(incoming: CIMultiDictProxy[str], scheme: str) -> CIMultiDict[str]:
    """What the backend receives: the client's headers that pass, then the gateway's lines."""
    headers, lines = upstream_parts(incoming, scheme)
    headers.extend(line_pairs(lines))
    return headers


def test_header_functions_strip_before_adding() -> None:
    incoming = headers_of(
        ("Connection", "x-gateway-secret, X-Request-ID"),
        ("x-gateway-secret", "forged"),
        ("x-api-key", DEMO_KEY),
        ("X-Keep", "1"),
    )
    out = to_upstream(incoming, "https")
    assert out.getall("x-gateway-secret") == [TEST_SECRET]
    assert "x-api-key" not in out
    assert out["X-Keep"] == "1"
    back = downstream_response_headers(
        headers_of(("Set-Cookie", "a"), ("Set-Cookie", "b")), "rid", "apigw"
    )
    assert back.getall("Set-Cookie") == ["a", "b"]


def test_headers_sent_twice_in_any_case_are_all_dropped_and_the_rest_kept_in_order() -> None:
    incoming = headers_of(
        ("Host", "gw.example"),
        ("Accept", "a"),
        ("x-api-key", DEMO_KEY),
        ("X-API-KEY", DEMO_KEY),
        ("X-Forwarded-For", "6.6.6.6"),
        ("accept", "b"),
        ("x-forwarded-for", "7.7.7.7"),
    )
    out = to_upstream(incoming, "http")
    assert list(out.items()) == [
        ("Accept", "a"),
        ("accept", "b"),
        ("X-Forwarded-Host", "gw.example"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-Proto", "http"),
        ("x-request-id", "rid"),
        ("x-consumer-name", "demo"),
        ("x-consumer-plan", "free"),
        ("x-gateway-secret", TEST_SECRET),
        ("traceparent", TRACEPARENT),
    ]
    upstream = headers_of(
        ("Server", "a"), ("Set-Cookie", "a"), ("server", "b"), ("X-Request-ID", "theirs")
    )
    back = downstream_response_headers(upstream, "rid", "apigw")
    assert list(back.items()) == [("Set-Cookie", "a"), ("x-request-id", "rid"), ("Server", "apigw")]


def test_gateway_lines_are_whole_lines_and_an_attempt_can_replace_the_traceparent() -> None:
    headers, lines = upstream_parts(
        headers_of(("tracestate", "forged"), ("Host", "gw.example")),
        "https",
        client_ip=None,
        tracestate="vendor=1",
    )
    # Derived from what the client sent: in the multidict, which aiohttp's serializer checks.
    assert list(headers.items()) == [("X-Forwarded-Host", "gw.example"), ("tracestate", "vendor=1")]
    # A peer without an address (a UNIX socket) gets no X-Forwarded-For.
    assert lines.startswith("X-Forwarded-Proto: https\r\n") and lines.endswith("\r\n")
    assert "\n" not in lines.replace("\r\n", "") and "\r" not in lines.replace("\r\n", "")
    other = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
    again = with_traceparent(lines, other)
    assert line_pairs(again) == [*line_pairs(lines)[:-1], ("traceparent", other)]
    assert line_pairs(lines)[-1] == ("traceparent", TRACEPARENT)
