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
