"""Header hygiene in both directions.

Hop-by-hop headers, and every header the `Connection` header names, are removed *before* the
gateway adds its own, so `Connection: x-gateway-secret` cannot remove the secret and no
client header can forge one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from aiohttp import hdrs
from multidict import CIMultiDict, CIMultiDictProxy, istr

API_KEY_HEADER = istr("x-api-key")
GATEWAY_SECRET_HEADER = istr("x-gateway-secret")
CONSUMER_HEADER = istr("x-consumer-name")
# The consumer's plan, for backends that vary what they do by plan.
PLAN_HEADER = istr("x-consumer-plan")
# draft-ietf-httpapi-ratelimit-headers-10: Structured Field Lists.
RATELIMIT_HEADER = istr("RateLimit")
RATELIMIT_POLICY_HEADER = istr("RateLimit-Policy")
REQUEST_ID_HEADER = istr("x-request-id")
# W3C Trace Context: the gateway continues or starts the trace and sets its own (tracecontext.py).
TRACEPARENT_HEADER = istr("traceparent")
TRACESTATE_HEADER = istr("tracestate")
# What every response names as its Server (aiohttp's default names Python's and its version).
DEFAULT_SERVER_HEADER = "apigw"

HOP_BY_HOP = (
    hdrs.CONNECTION,
    istr("keep-alive"),
    istr("proxy-connection"),
    hdrs.TE,
    hdrs.TRAILER,
    hdrs.TRANSFER_ENCODING,
    hdrs.UPGRADE,
    hdrs.PROXY_AUTHORIZATION,
    hdrs.PROXY_AUTHENTICATE,
    # RFC 9113 3.2.1: belongs to the h2c upgrade of this one connection.
    istr("http2-settings"),
)
# Removed from what the client sent: hop-by-hop, framing the gateway redoes itself, the
# client's credentials, and every header the gateway sets, so none can be forged.
_DROP_FROM_CLIENT = (
    *HOP_BY_HOP,
    hdrs.HOST,
    hdrs.CONTENT_LENGTH,
    hdrs.EXPECT,
    API_KEY_HEADER,
    GATEWAY_SECRET_HEADER,
    CONSUMER_HEADER,
    PLAN_HEADER,
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    TRACESTATE_HEADER,
    hdrs.X_FORWARDED_FOR,
    hdrs.X_FORWARDED_HOST,
    hdrs.X_FORWARDED_PROTO,
    hdrs.FORWARDED,
)
# The upstream's Server header is replaced by the gateway's, as nginx hides it by default.
_DROP_FROM_UPSTREAM = (*HOP_BY_HOP, GATEWAY_SECRET_HEADER, REQUEST_ID_HEADER, hdrs.SERVER)

# As case-insensitive multidicts, for one lookup in C per header present (a request or answer
# carries a handful, the lists above name a dozen or two: popping each name would cost far
# more). The parser's header names are istr, whose case-folded form multidict keeps: no
# `.lower()` copy per name.
_DROP_FROM_CLIENT_NAMES = CIMultiDictProxy(CIMultiDict((name, None) for name in _DROP_FROM_CLIENT))
_DROP_FROM_UPSTREAM_NAMES = CIMultiDictProxy(
    CIMultiDict((name, None) for name in _DROP_FROM_UPSTREAM)
)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(client_value: str | None, fresh: str | None = None) -> str:
    """The client's X-Request-ID when it is sane (1-128 of [A-Za-z0-9._:-]), else a new one:
    `fresh` (random hex drawn by the caller) when given."""
    if client_value is not None and _REQUEST_ID.fullmatch(client_value) is not None:
        return client_value
    return os.urandom(16).hex() if fresh is None else fresh


def tokens(values: Iterable[str]) -> list[str]:
    """The comma-separated elements of every value of a list header, stripped, empty ones out."""
    return [t.strip() for value in values for t in value.split(",") if t.strip()]


def _copy_without(
    original: CIMultiDictProxy[str], drop: CIMultiDictProxy[None]
) -> CIMultiDict[str]:
    """A copy of `original` without the headers `Connection` names and those `drop` names.

    A multidict, not a dict: every Set-Cookie line must survive.
    """
    headers = CIMultiDict(original)
    if hdrs.CONNECTION in original:
        for name in tokens(original.getall(hdrs.CONNECTION)):
            headers.popall(name, None)
    for name in original:
        if name in drop:
            # Not contextlib.suppress: a context manager per dropped header costs more than
            # the deletion; the try costs nothing until a name sent twice is already gone.
            try:  # noqa: SIM105
                del headers[name]
            except KeyError:
                pass
    return headers


def upstream_request_headers(
    incoming: CIMultiDictProxy[str],
    *,
    secret: str,
    consumer: str,
    plan: str,
    request_id: str,
    client_ip: str | None,
    scheme: str,
    traceparent: str,
    tracestate: str | None = None,
) -> tuple[CIMultiDict[str], str]:
    """What goes to the upstream: the client's headers, stripped, with those derived from
    what the client sent (X-Forwarded-Host, tracestate); and the gateway's own headers as
    the lines of a request head, each ending in CRLF.

    The lines are written after the head aiohttp serializes (apigw/client.py). aiohttp's
    serializer checks and copies a header one character at a time, about 35 instructions a
    byte; these 250 bytes or so cost 13 k instructions per request that way. Every value in
    them is the gateway's: its secret and the consumer's and plan's names (checked when the
    config is loaded), the peer's address, the scheme, a request id that is either drawn
    here or matched `request_id_from`'s pattern, and the traceparent it formats. Anything
    the client wrote stays in the multidict, where aiohttp's serializer refuses control
    characters.
    """
    headers = _copy_without(incoming, _DROP_FROM_CLIENT_NAMES)
    host = incoming.get(hdrs.HOST)
    # The client's X-Forwarded-* cannot be trusted at the edge: they are replaced, not appended.
    if host:
        headers.add(hdrs.X_FORWARDED_HOST, host)
    if tracestate is not None:
        headers.add(TRACESTATE_HEADER, tracestate)
    # One format for all of them; the traceparent last, for with_traceparent().
    lines = (
        f"X-Forwarded-For: {client_ip}\r\nX-Forwarded-Proto: {scheme}\r\n"
        f"x-request-id: {request_id}\r\nx-consumer-name: {consumer}\r\n"
        f"x-consumer-plan: {plan}\r\nx-gateway-secret: {secret}\r\n"
        f"traceparent: {traceparent}\r\n"
    )
    if not client_ip:
        # A peer without an address (a UNIX socket): no X-Forwarded-For, the first line.
        lines = lines[lines.index("\n") + 1 :]
    return headers, lines


def with_traceparent(lines: str, traceparent: str) -> str:
    """The lines with another traceparent: one attempt's, when spans are exported."""
    return f"{lines[: lines.rindex('traceparent: ')]}traceparent: {traceparent}\r\n"


def line_pairs(lines: str) -> list[tuple[str, str]]:
    """The gateway's lines as (name, value) pairs, for a request sent through a multidict:
    with a body, a WebSocket handshake, or while the connection cannot take a write."""
    pairs = []
    for line in lines.split("\r\n")[:-1]:
        name, _, value = line.partition(": ")
        pairs.append((name, value))
    return pairs


def downstream_response_headers(
    upstream: CIMultiDictProxy[str], request_id: str, server: str
) -> CIMultiDict[str]:
    headers = _copy_without(upstream, _DROP_FROM_UPSTREAM_NAMES)
    headers[REQUEST_ID_HEADER] = request_id
    headers[hdrs.SERVER] = server
    return headers
