"""Header functions: the gateway's own headers are added after the client's are stripped."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from apigw.shared.headers import downstream_response_headers, upstream_request_headers
from tests.support import DEMO_KEY, TEST_SECRET


def headers_of(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    """Headers as aiohttp hands them over: read-only, case-insensitive, repeats kept."""
    return CIMultiDictProxy(CIMultiDict(pairs))


def to_upstream(incoming: CIMultiDictProxy[str], scheme: str) -> CIMultiDict[str]:
    """What the demo consumer's request from 10.0.0.1, id "rid", sends its backend."""
    return upstream_request_headers(
        incoming,
        secret=TEST_SECRET,
        consumer="demo",
        request_id="rid",
        client_ip="10.0.0.1",
        scheme=scheme,
    )


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
        ("X-Forwarded-For", "10.0.0.1"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "gw.example"),
        ("x-request-id", "rid"),
        ("x-consumer-name", "demo"),
        ("x-gateway-secret", TEST_SECRET),
    ]
    upstream = headers_of(
        ("Server", "a"), ("Set-Cookie", "a"), ("server", "b"), ("X-Request-ID", "theirs")
    )
    back = downstream_response_headers(upstream, "rid", "apigw")
    assert list(back.items()) == [("Set-Cookie", "a"), ("x-request-id", "rid"), ("Server", "apigw")]
