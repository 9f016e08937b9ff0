"""A WebSocket handshake through the gateway: admit, connect, check the 101, splice.

By the time it gets here the handshake passed the same gate, key check and routing as any
request. The upstream connection is the tunnel's own (never the pooled session's): it lives as
long as the WebSocket and is counted by `websocket.max_connections` and `limits.max_streams`.
"""

from __future__ import annotations

import asyncio
import logging
from time import monotonic, perf_counter

from aiohttp import hdrs, web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from apigw.observability.exchange import Exchange
from apigw.shared.appkeys import EXCHANGE_KEY, KEY_IN_PROTOCOL_KEY
from apigw.shared.errors import ProblemError
from apigw.shared.headers import downstream_response_headers
from apigw.streaming.streams import LongLived
from apigw.streaming.tunnel import MAX_HEAD_BYTES, Tunnel, UpstreamProtocol
from apigw.streaming.websocket import check_handshake, check_switch, upstream_handshake_headers
from apigw.upstreams import Target, UpstreamPool

log = logging.getLogger("apigw.upgrade")

# A refusal (401, 404 ...) to a handshake is relayed when it is this small and framed by length.
MAX_REFUSAL_BYTES = 65536


async def tunnel_websocket(
    request: web.Request,
    pool: UpstreamPool,
    headers: CIMultiDict[str],
    registry: LongLived,
    server: str,
) -> web.StreamResponse:
    route = pool.route
    settings = route.websocket
    key = check_handshake(request)
    if request.get(KEY_IN_PROTOCOL_KEY) and not settings.key_protocol:
        raise ProblemError(401, "A valid API key is required in the x-api-key header.")
    registry.admit_tunnel(route.prefix, settings.max_connections)
    exchange = request[EXCHANGE_KEY]
    exchange.attempts = 1
    exchange.attempt_start = perf_counter()
    try:
        target, upstream = await _connect(pool)
        exchange.target = target
        try:
            return await _handshake(
                request, pool, target, upstream, headers, key, registry, server, exchange
            )
        finally:
            target.in_flight -= 1
            if upstream.tunnel is None and upstream.transport is not None:
                upstream.transport.abort()
    finally:
        registry.release()


async def _connect(pool: UpstreamPool) -> tuple[Target, UpstreamProtocol]:
    """A connection to a target of the route; a target that cannot be reached is retried
    elsewhere (a handshake has no body, so nothing was sent yet)."""
    loop = asyncio.get_running_loop()
    timeout = pool.route.timeouts.connect
    target = pool.pick()
    tried: list[Target] = []
    while True:
        if target is None:
            raise ProblemError(
                503,
                "No upstream of this route is healthy; retry later.",
                headers={hdrs.RETRY_AFTER: str(pool.retry_after())},
                reason="no_healthy_upstream",
            )
        url = URL(target.base)
        assert url.host is not None and url.port is not None
        tls = url.scheme == "https"
        target.in_flight += 1
        try:
            async with asyncio.timeout(timeout):
                _, protocol = await loop.create_connection(
                    UpstreamProtocol,
                    url.host,
                    url.port,
                    ssl=tls or None,
                    server_hostname=url.host if tls else None,
                )
            return target, protocol
        except (OSError, TimeoutError) as exc:
            target.in_flight -= 1
            pool.failed(target)
            kind = "timeout" if isinstance(exc, TimeoutError) else "connect"
            pool.stats.errors[kind] = pool.stats.errors.get(kind, 0) + 1
            tried.append(target)
            log.warning(
                "upstream %s unreachable for a WebSocket: %s", target.base, type(exc).__name__
            )
            if len(tried) > pool.route.retries:
                if isinstance(exc, TimeoutError):
                    raise ProblemError(
                        504, "The upstream did not answer in time.", reason="upstream_timeout"
                    ) from None
                raise ProblemError(
                    502, "The upstream could not be reached.", reason="upstream_connect"
                ) from None
            target = pool.pick_retry(tried)
            if target is None:
                raise ProblemError(
                    502, "The upstream could not be reached.", reason="upstream_connect"
                ) from None


async def _handshake(
    request: web.Request,
    pool: UpstreamPool,
    target: Target,
    upstream: UpstreamProtocol,
    headers: CIMultiDict[str],
    key: str,
    registry: LongLived,
    server: str,
    exchange: Exchange,
) -> web.StreamResponse:
    url = URL(target.base)
    host = url.raw_host or ""
    if not url.is_default_port():
        host = f"{host}:{url.port}"
    headers = upstream_handshake_headers(headers, request.headers, host)
    base_path = url.raw_path.rstrip("/")
    lines = [f"GET {base_path}{request.raw_path} HTTP/1.1"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    head = "\r\n".join(lines) + "\r\n\r\n"
    assert upstream.transport is not None
    upstream.transport.write(head.encode("utf-8", "surrogateescape"))
    try:
        async with asyncio.timeout(pool.route.timeouts.read):
            end = await _read_until(upstream, b"\r\n\r\n", MAX_HEAD_BYTES)
            status, reason, answer = _parse_head(bytes(upstream.buffer[:end]))
            body_end = end + 4
            if status != 101:
                body_end += _refusal_length(status, answer)
                await _read_until(upstream, None, body_end)
    except TimeoutError:
        pool.failed(target)
        log.warning("upstream %s did not answer a WebSocket handshake in time", target.base)
        raise ProblemError(
            504, "The upstream did not answer in time.", reason="upstream_timeout"
        ) from None
    except ConnectionError:
        pool.failed(target)
        log.warning("upstream %s closed the connection during a handshake", target.base)
        raise ProblemError(
            502, "The upstream closed the connection.", reason="upstream_reset"
        ) from None
    pool.succeeded(target)
    exchange.upstream_s = perf_counter() - exchange.attempt_start
    exchange.upstream_status = status
    request_id = exchange.request_id
    if status != 101:
        # The upstream refused (401, 404, 400 ...): the client learns why, and is not upgraded.
        refusal = downstream_response_headers(CIMultiDictProxy(answer), request_id, server)
        refusal.popall(hdrs.CONTENT_LENGTH, None)
        body = bytes(upstream.buffer[end + 4 : body_end])
        return web.Response(status=status, reason=reason, body=body, headers=refusal)
    check_switch(status, answer, key, request.headers)
    switched = downstream_response_headers(CIMultiDictProxy(answer), request_id, server)
    switched[hdrs.UPGRADE] = "websocket"
    switched[hdrs.CONNECTION] = "Upgrade"
    response = web.StreamResponse(status=101, reason="Switching Protocols", headers=switched)
    response.force_close()
    await response.prepare(request)
    # Only now: from here on the upstream's bytes go straight to the client, after the 101.
    tunnel = Tunnel(request, upstream, pool.route.websocket)
    prefix = pool.route.prefix
    registry.add_tunnel(prefix, tunnel)
    started = monotonic()
    try:
        tunnel.start(bytes(upstream.buffer[body_end:]))
        upstream.buffer = bytearray()
        assert upstream.transport is not None
        upstream.transport.resume_reading()
        await tunnel.run()
    finally:
        registry.remove_tunnel(prefix, tunnel)
        stats = pool.stats
        stats.bytes_in += tunnel.bytes_in
        stats.bytes_out += tunnel.bytes_out
        exchange.bytes_out = tunnel.bytes_out
        if tunnel.ended_by == "upstream lost":
            exchange.reason = "upstream_reset"
    if tunnel.ended_by:
        log.info(
            "WebSocket %s on %s closed by the gateway after %.1fs (%s)",
            request_id,
            prefix,
            monotonic() - started,
            tunnel.ended_by,
        )
    return response


async def _read_until(upstream: UpstreamProtocol, marker: bytes | None, limit: int) -> int:
    """Wait until the answer holds `marker` (returns where it starts) or, without one, `limit`
    bytes; a longer answer head than `limit` is a 502."""
    while True:
        buffer = upstream.buffer
        if marker is None:
            if len(buffer) >= limit:
                return limit
        else:
            found = buffer.find(marker)
            if found >= 0:
                return found
            if len(buffer) > limit:
                raise ProblemError(
                    502, "The upstream's answer head is too large.", reason="upstream_protocol"
                )
        await upstream.more()


def _parse_head(head: bytes) -> tuple[int, str, CIMultiDict[str]]:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise ProblemError(
            502, "The upstream's answer is not valid HTTP.", reason="upstream_protocol"
        ) from None
    status_line, *fields = text.split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise ProblemError(
            502, "The upstream's answer is not valid HTTP.", reason="upstream_protocol"
        )
    headers: CIMultiDict[str] = CIMultiDict()
    for field in fields:
        name, colon, value = field.partition(":")
        if not colon or not name or name != name.strip() or not name.isprintable():
            raise ProblemError(
                502, "The upstream's answer is not valid HTTP.", reason="upstream_protocol"
            )
        headers.add(name, value.strip())
    return int(code), reason, headers


def _refusal_length(status: int, headers: CIMultiDict[str]) -> int:
    if status in (204, 304) or 100 <= status < 200:
        return 0
    lengths = headers.getall(hdrs.CONTENT_LENGTH, ())
    if (
        hdrs.TRANSFER_ENCODING in headers
        or len(lengths) != 1
        or not lengths[0].isdigit()
        or int(lengths[0]) > MAX_REFUSAL_BYTES
    ):
        raise ProblemError(
            502, "The upstream refused the WebSocket handshake.", reason="upstream_protocol"
        )
    return int(lengths[0])
