"""The WebSocket handshake through the gateway: checked on both sides before any tunnel exists.

The client's handshake is checked strictly (RFC 6455 4.2.1) after its key and route were
accepted; it is forwarded with the usual header hygiene plus the WebSocket headers, on a
connection of its own; the upstream's answer must be a real `101` for exactly this handshake
(status, `Upgrade`, `Connection`, `Sec-WebSocket-Accept`, and a subprotocol and extensions the
client offered), else the client gets a 502 and is never upgraded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from aiohttp import HttpVersion11, hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy

from apigw.shared.errors import ProblemError
from apigw.shared.headers import tokens

# RFC 6455 1.3: the server proves it read the handshake by hashing the key with this.
_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A browser's WebSocket cannot set x-api-key; on routes with `websocket.key_protocol` it may
# offer the key as this subprotocol instead. The token is never forwarded nor echoed.
KEY_PROTOCOL_PREFIX = "x-api-key."
_VERSION_13: dict[str, str] = {hdrs.SEC_WEBSOCKET_VERSION: "13"}


def is_websocket_upgrade(headers: CIMultiDictProxy[str]) -> bool:
    """The client asks for a WebSocket: `Upgrade: websocket`, listed in `Connection` (RFC 9110
    7.8; an Upgrade not named there, h2c and other protocols are stripped as hop-by-hop)."""
    return "websocket" in (t.lower() for t in tokens(headers.getall(hdrs.UPGRADE, ()))) and (
        "upgrade" in (t.lower() for t in tokens(headers.getall(hdrs.CONNECTION, ())))
    )


def key_from_protocols(headers: CIMultiDictProxy[str]) -> str | None:
    """The API key a browser offered as the subprotocol `x-api-key.<key>`, if it offered one."""
    found = [
        t[len(KEY_PROTOCOL_PREFIX) :]
        for t in tokens(headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ()))
        if t.startswith(KEY_PROTOCOL_PREFIX)
    ]
    if len(found) > 1:
        raise ProblemError(400, "Offer the API key as a subprotocol once.")
    return found[0] if found else None


def offered_protocols(headers: CIMultiDictProxy[str]) -> list[str]:
    """The subprotocols the client offered, the key carrier left out."""
    return [
        t
        for t in tokens(headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ()))
        if not t.startswith(KEY_PROTOCOL_PREFIX)
    ]


def check_handshake(request: web.Request) -> str:
    """Refuse a WebSocket handshake (`is_websocket_upgrade`) the gateway would not tunnel;
    returns its key."""
    headers = request.headers
    if request.method != hdrs.METH_GET or request.version != HttpVersion11:
        raise ProblemError(400, "A WebSocket handshake is an HTTP/1.1 GET.")
    upgrades = tokens(headers.getall(hdrs.UPGRADE, ()))
    if [u.lower() for u in upgrades] != ["websocket"]:
        raise ProblemError(400, "A WebSocket handshake upgrades to 'websocket' only.")
    if headers.getall(hdrs.SEC_WEBSOCKET_VERSION, ()) != ["13"]:
        raise ProblemError(
            426,
            "Only WebSocket version 13 is supported.",
            headers=_VERSION_13,
            close=True,
            reason="bad_request",
        )
    keys = headers.getall(hdrs.SEC_WEBSOCKET_KEY, ())
    if len(keys) != 1 or not _is_websocket_key(keys[0]):
        raise ProblemError(400, "Sec-WebSocket-Key must be the base64 of 16 bytes.")
    if request.body_exists:
        raise ProblemError(400, "A WebSocket handshake has no body.", close=True)
    return keys[0]


def _is_websocket_key(value: str) -> bool:
    try:
        return len(base64.b64decode(value.encode("ascii"), validate=True)) == 16
    except (binascii.Error, UnicodeEncodeError):
        return False


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + _ACCEPT_GUID).digest()).decode()  # noqa: S324


def upstream_handshake_headers(
    headers: CIMultiDict[str], incoming: CIMultiDictProxy[str], host: str
) -> CIMultiDict[str]:
    """The hygienic request headers of the proxy, plus what makes them a handshake."""
    headers.popall(hdrs.SEC_WEBSOCKET_PROTOCOL, None)
    protocols = offered_protocols(incoming)
    if protocols:
        headers[hdrs.SEC_WEBSOCKET_PROTOCOL] = ", ".join(protocols)
    headers[hdrs.HOST] = host
    headers[hdrs.CONNECTION] = "Upgrade"
    headers[hdrs.UPGRADE] = "websocket"
    return headers


def check_switch(
    status: int, headers: CIMultiDict[str], key: str, incoming: CIMultiDictProxy[str]
) -> None:
    """Raise a 502 unless the upstream's answer is a 101 for exactly this handshake."""
    if status != 101:
        raise ProblemError(
            502, "The upstream did not accept the WebSocket handshake.", reason="upstream_protocol"
        )
    if [u.lower() for u in tokens(headers.getall(hdrs.UPGRADE, ()))] != ["websocket"]:
        raise ProblemError(
            502,
            "The upstream switched to another protocol than WebSocket.",
            reason="upstream_protocol",
        )
    if "upgrade" not in (t.lower() for t in tokens(headers.getall(hdrs.CONNECTION, ()))):
        raise ProblemError(
            502, "The upstream's 101 lacks 'Connection: Upgrade'.", reason="upstream_protocol"
        )
    if headers.getall(hdrs.SEC_WEBSOCKET_ACCEPT, ()) != [accept_for(key)]:
        raise ProblemError(
            502,
            "The upstream's 101 does not answer this handshake's key.",
            reason="upstream_protocol",
        )
    chosen = headers.getall(hdrs.SEC_WEBSOCKET_PROTOCOL, ())
    if chosen and (len(chosen) > 1 or chosen[0].strip() not in offered_protocols(incoming)):
        raise ProblemError(
            502,
            "The upstream chose a subprotocol the client did not offer.",
            reason="upstream_protocol",
        )
    offered = {
        t.partition(";")[0].strip().lower()
        for t in tokens(incoming.getall(hdrs.SEC_WEBSOCKET_EXTENSIONS, ()))
    }
    for extension in tokens(headers.getall(hdrs.SEC_WEBSOCKET_EXTENSIONS, ())):
        if extension.partition(";")[0].strip().lower() not in offered:
            raise ProblemError(
                502,
                "The upstream chose an extension the client did not offer.",
                reason="upstream_protocol",
            )
