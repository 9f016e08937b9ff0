"""Header functions: the gateway's own headers are added after the client's are stripped."""

from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from apigw.shared.headers import downstream_response_headers, upstream_request_headers
from tests.support import DEMO_KEY, TEST_SECRET


def test_header_functions_strip_before_adding() -> None:
    incoming = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Connection", "x-gateway-secret, X-Request-ID"),
                ("x-gateway-secret", "forged"),
                ("x-api-key", DEMO_KEY),
                ("X-Keep", "1"),
            ]
        )
    )
    out = upstream_request_headers(
        incoming,
        secret=TEST_SECRET,
        consumer="demo",
        request_id="rid",
        client_ip="10.0.0.1",
        scheme="https",
    )
    assert out.getall("x-gateway-secret") == [TEST_SECRET]
    assert "x-api-key" not in out
    assert out["X-Keep"] == "1"
    back = downstream_response_headers(
        CIMultiDictProxy(CIMultiDict([("Set-Cookie", "a"), ("Set-Cookie", "b")])), "rid", "apigw"
    )
    assert back.getall("Set-Cookie") == ["a", "b"]


def test_headers_sent_twice_in_any_case_are_all_dropped_and_the_rest_kept_in_order() -> None:
    incoming = CIMultiDictProxy(
        CIMultiDict(
            [
                ("Host", "gw.example"),
                ("Accept", "a"),
                ("x-api-key", DEMO_KEY),
                ("X-API-KEY", DEMO_KEY),
                ("X-Forwarded-For", "6.6.6.6"),
                ("accept", "b"),
                ("x-forwarded-for", "7.7.7.7"),
            ]
        )
    )
    out = upstream_request_headers(
        incoming,
        secret=TEST_SECRET,
        consumer="demo",
        request_id="rid",
        client_ip="10.0.0.1",
        scheme="http",
    )
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
    upstream = CIMultiDictProxy(
        CIMultiDict(
            [("Server", "a"), ("Set-Cookie", "a"), ("server", "b"), ("X-Request-ID", "theirs")]
        )
    )
    back = downstream_response_headers(upstream, "rid", "apigw")
    assert list(back.items()) == [("Set-Cookie", "a"), ("x-request-id", "rid"), ("Server", "apigw")]
