"""The upstream side of the proxy: the worker's one pooled ClientSession, and the call the
proxy makes on it.

`ClientSession.request()` serves every use aiohttp supports (redirects, cookies, auth,
netrc, proxies, tracing, client middlewares, a total-timeout timer), and walks through all of
them on every call: about 150 lines of Python per request, a quarter of what the bare
aiohttp proxy spends on its side of the exchange. The proxy uses none of them, so
`UpstreamCall` does only what is left: build the request (aiohttp's own `ClientRequest`), take
a connection from the session's connector (its pool and limits), send, read the head.
Everything it leans on is pinned by tests/gateway/test_aiohttp_internals.py, which fails if an
aiohttp upgrade changes it; other users of the session (health checks, document fetches)
call `session.request()` as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp import HttpVersion11, hdrs
from aiohttp.client_exceptions import ConnectionTimeoutError
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.connector import Connection
from aiohttp.helpers import TimerNoop
from aiohttp.http_writer import StreamWriter, _serialize_headers
from aiohttp.typedefs import LooseHeaders
from multidict import CIMultiDict
from yarl import URL

from apigw.config import PoolSettings
from apigw.shared.headers import line_pairs

# The gateway forwards the client's headers as they are: the session adds none of its own.
_SKIP_AUTO_HEADERS = (hdrs.ACCEPT, hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT, hdrs.CONTENT_TYPE)
_SKIPPED: CIMultiDict[None] = CIMultiDict((name, None) for name in _SKIP_AUTO_HEADERS)

# The session's response-parsing limits, given to it and to UpstreamCall alike (aiohttp's
# defaults, written out so the two cannot drift apart).
READ_BUFSIZE = 2**18
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 128
TIMEOUT_CEIL_THRESHOLD = 5.0
# As aiohttp: a request that cannot change anything may be sent again once on a fresh
# connection when a pooled one turns out closed by the upstream (RFC 9112, 9.3.1).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
_STALE_CONNECTION = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)
# The methods aiohttp sends without a body or a framing header when given none.
_BODILESS = aiohttp.ClientRequest.GET_METHODS
_MAX_POOL_KEYS = 4096
# No total timeout per attempt (the proxy keeps the whole-request deadline itself), so no
# timer: one shared no-op one, as aiohttp uses when none is set.
_NO_TIMER = TimerNoop()


class ForwardingRequest(aiohttp.ClientRequest):
    """aiohttp's ClientRequest, minus per-request work the gateway never needs.

    Given `skip_auto_headers`, aiohttp sorts the names, builds a multidict of them and copies
    every request header to see which defaults to add; the gateway adds none, ever, so the
    skipped set is made once here. The headers, a fresh multidict made for this request, are
    copied in C instead of one `add` per header in Python. A request without a body is built
    by `bodiless()`, which sets what `__init__` would and skips its steps that do nothing
    for it, and its connection key is the one of its target, computed once. Reaches into
    aiohttp (none of this is public API): tests/gateway/test_aiohttp_internals.py fails if an
    upgrade changes what it relies on.
    """

    # The pool key of a request made by bodiless(); None: aiohttp computes it.
    _pool_key: ConnectionKey | None = None
    # bodiless(): the gateway's own headers as head lines (apigw/shared/headers.py), written
    # after the client's: appended to the head aiohttp serializes, or added to the headers
    # when aiohttp sends the request itself.
    _lines = ""

    @classmethod
    def bodiless(
        cls,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        lines: str,
        loop: asyncio.AbstractEventLoop,
        session: aiohttp.ClientSession,
        pool_key: ConnectionKey,
    ) -> ForwardingRequest:
        """What `cls(method, url, headers=headers, loop=loop, timer=..., session=session)`
        makes of a GET, HEAD, OPTIONS or TRACE without a body or an Expect header, to a URL
        without credentials or fragment: the same attributes, ten method calls fewer."""
        self = cls.__new__(cls)
        self._session = session
        self.original_url = self.url = url
        self.method = method
        self.chunked = None
        self.compress = None
        self.loop = loop
        self.length = None
        self.response_class = aiohttp.ClientResponse
        self._timer = _NO_TIMER
        self._ssl = True
        self.server_hostname = None
        self.version = HttpVersion11
        self.update_headers(headers)
        self._skip_auto_headers = _SKIPPED
        self.proxy = self.proxy_auth = self.proxy_headers = None
        self._body = None
        self._traces = []
        self._pool_key = pool_key
        self._lines = lines
        return self

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        protocol = conn.protocol
        assert protocol is not None
        if self._pool_key is None or protocol.writing_paused:
            # Not from bodiless() (its headers hold the lines already), or a write must
            # wait: aiohttp sends it.
            self.headers.extend(line_pairs(self._lines))
            return await super().send(conn)
        # What aiohttp's send() does for a request without a body: the head is written
        # at once, and the read timeout starts. The gateway's lines go where the head's
        # closing blank line was, and it after them.
        writer = StreamWriter(protocol, self.loop)
        head = _serialize_headers(f"{self.method} {self.url.raw_path_qs} HTTP/1.1", self.headers)
        writer._write(head[:-2] + self._lines.encode() + b"\r\n")
        protocol.start_timeout()
        writer.set_eof()
        self.response = aiohttp.ClientResponse(
            self.method,
            self.original_url,
            writer=None,
            continue100=None,
            timer=self._timer,
            request_info=self.request_info,
            traces=self._traces,
            loop=self.loop,
            session=self._session,
            stream_writer=writer,
        )
        return self.response

    @property
    def connection_key(self) -> ConnectionKey:
        key = self._pool_key
        return _connection_key(self) if key is None else key

    def update_headers(self, headers: LooseHeaders | None) -> None:
        if not isinstance(headers, CIMultiDict) or hdrs.HOST in headers:
            super().update_headers(headers)  # not what the proxy passes
            return
        host = self.url.host_port_subcomponent
        assert host is not None  # an absolute URL: the proxy builds it from a target base
        self.headers = CIMultiDict(((hdrs.HOST, host),))  # Host first, as aiohttp puts it
        self.headers.extend(headers)

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        self._skip_auto_headers = _SKIPPED


# aiohttp's own computation of a request's pool key (ClientRequest.connection_key).
_connection_key = aiohttp.ClientRequest.connection_key.fget  # type: ignore[attr-defined]


def make_session(pool: PoolSettings) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=pool.max_connections,
        keepalive_timeout=pool.idle_timeout,
        # Backends are reached by address from the config; caching the lookup is enough.
        ttl_dns_cache=10,
        timeout_ceil_threshold=TIMEOUT_CEIL_THRESHOLD,
    )
    return aiohttp.ClientSession(
        connector=connector,
        # Bytes go through as the upstream sent them; Content-Encoding stays true.
        auto_decompress=False,
        # One session serves every client: it must never keep or send anyone's cookies.
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=_SKIP_AUTO_HEADERS,
        request_class=ForwardingRequest,
        timeout=aiohttp.ClientTimeout(total=None),
        read_bufsize=READ_BUFSIZE,
        max_line_size=MAX_LINE_SIZE,
        max_field_size=MAX_FIELD_SIZE,
        max_headers=MAX_HEADERS,
    )


class UpstreamCall:
    """`session.request(method, base + path, headers=..., data=..., allow_redirects=False,
    timeout=...)` for the proxy, the headers being `headers` and then `lines` (the gateway's
    own, as head lines): the same request on the wire, the same ClientResponse back, the
    same errors, on the session's own connector."""

    __slots__ = ("connector", "loop", "pool_keys", "session")

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.connector = session.connector
        self.loop = asyncio.get_running_loop()
        # Target base URL -> the pool key of every request to it (None: one with credentials,
        # which bodiless() does not build).
        self.pool_keys: dict[str, ConnectionKey | None] = {}

    async def __call__(
        self,
        method: str,
        base: str,
        path: str,
        headers: CIMultiDict[str],
        lines: str,
        body: Any,
        timeouts: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        if self.session.closed:
            raise RuntimeError("Session is closed")
        url = URL(base + path, encoded=True)
        retry_stale = body is None and method in _IDEMPOTENT
        while True:
            try:
                key = self.pool_keys[base]
            except KeyError:
                key = self._pool_key(base, url)
            if (
                key is not None
                and body is None
                and method in _BODILESS
                and hdrs.EXPECT not in headers
                and not url.raw_fragment
            ):
                request = ForwardingRequest.bodiless(
                    method, url, headers, lines, self.loop, self.session, key
                )
            else:
                # Sent by aiohttp: the gateway's lines join the headers, ahead of the framing
                # headers aiohttp adds for the body.
                forwarded = headers.copy()
                forwarded.extend(line_pairs(lines))
                request = ForwardingRequest(
                    method,
                    url,
                    headers=forwarded,
                    data=body,
                    loop=self.loop,
                    timer=_NO_TIMER,
                    session=self.session,
                )
            try:
                return await self._send(request, timeouts)
            except _STALE_CONNECTION:
                if not retry_stale:
                    raise
                retry_stale = False
            except aiohttp.ClientError:
                raise
            except OSError as exc:
                if exc.errno is None and isinstance(exc, asyncio.TimeoutError):
                    raise
                raise aiohttp.ClientOSError(*exc.args) from exc
            finally:
                if request._body is not None:
                    await request._body.close()

    def _pool_key(self, base: str, url: URL) -> ConnectionKey | None:
        if len(self.pool_keys) > _MAX_POOL_KEYS:
            self.pool_keys.clear()  # targets of configs reloaded away
        key = None
        if not (url.raw_user or url.raw_password):
            request = ForwardingRequest("GET", url, loop=self.loop, session=self.session)
            key = request.connection_key
        self.pool_keys[base] = key
        return key

    async def _send(
        self, request: ForwardingRequest, timeouts: aiohttp.ClientTimeout
    ) -> aiohttp.ClientResponse:
        assert self.connector is not None
        try:
            connection = await self.connector.connect(request, traces=[], timeout=timeouts)
        except TimeoutError as exc:
            raise ConnectionTimeoutError(f"Connection timeout to host {request.url}") from exc
        protocol = connection.protocol
        assert protocol is not None
        protocol.set_response_params(
            timer=_NO_TIMER,
            skip_payload=request.method == hdrs.METH_HEAD,
            read_until_eof=True,
            auto_decompress=False,
            read_timeout=timeouts.sock_read,
            read_bufsize=READ_BUFSIZE,
            timeout_ceil_threshold=TIMEOUT_CEIL_THRESHOLD,
            max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE,
            max_headers=MAX_HEADERS,
        )
        try:
            response = await request.send(connection)
            try:
                await response.start(connection)
            except BaseException:
                response.close()
                raise
        except BaseException:
            connection.close()
            raise
        return response
