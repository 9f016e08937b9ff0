"""The byte tunnel between a client and an upstream once both agreed on a WebSocket.

Bytes go through as they come, both ways, in the chunks the sockets deliver: frames, fragments,
compression and close codes stay exactly as the endpoints made them. Backpressure is the
transports' own: when one side's write buffer passes its high-water mark, reading from the other
side pauses until it drains, so a connection holds at most one read plus that buffer per
direction. `FrameTracker`s follow the frame boundaries so that the gateway can close cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from aiohttp import web

from apigw.config.streaming import WebSocketSettings
from apigw.streaming.frames import GOING_AWAY, INTERNAL_ERROR, FrameTracker, close_frame

log = logging.getLogger("apigw.tunnel")

# After the gateway sent its own close frames (drain, idle, lifetime), the endpoints get this
# long to answer before both connections are cut.
CLOSE_WAIT = 2.0
# The longest upstream answer head the gateway reads for a handshake.
MAX_HEAD_BYTES = 65536
# What the upstream may send before the tunnel starts (a head and a short refusal, or early
# frames); reading pauses past it until the handshake code takes the bytes.
_HANDSHAKE_BUFFER = 2 * MAX_HEAD_BYTES


class UpstreamProtocol(asyncio.Protocol):
    """The upstream end: collects the answer head, then hands bytes to its tunnel."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()  # the answer while the handshake is under way
        self.tunnel: Tunnel | None = None
        self.lost = False
        self._waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but the same interface.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_upstream(data)
            return
        self.buffer += data
        if len(self.buffer) > _HANDSHAKE_BUFFER:
            # Nothing more is read until the handshake code looks: it stops here.
            assert self.transport is not None
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        if self.tunnel is not None:
            self.tunnel.upstream_lost()
        self._wake()

    def pause_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.pause_client()

    def resume_writing(self) -> None:
        if self.tunnel is not None:
            self.tunnel.resume_client()

    async def more(self) -> None:
        """Wait for more of the answer (or the connection's end)."""
        if self.lost:
            raise ConnectionResetError("the upstream closed the connection")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class _ClientFeed:
    """What aiohttp's server protocol feeds the client's bytes to once the 101 is sent
    (`RequestHandler.set_parser`): `feed_data` returns (eof, tail); `feed_eof` means the
    client's connection is lost."""

    __slots__ = ("_tunnel",)

    def __init__(self, tunnel: Tunnel) -> None:
        self._tunnel = tunnel

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._tunnel.from_client(data)
        return False, b""

    def feed_eof(self) -> None:
        self._tunnel.client_lost()


class Tunnel:
    """One client connection spliced to one upstream connection."""

    __slots__ = (
        "_client",
        "_client_blocked",
        "_client_paused",
        "_close_wait",
        "_done",
        "_down",
        "_idle",
        "_idle_handle",
        "_last",
        "_lifetime_handle",
        "_loop",
        "_pending_down",
        "_pending_up",
        "_request",
        "_up",
        "_upstream",
        "_waiter",
        "bytes_in",
        "bytes_out",
        "cut_down",
        "cut_up",
        "ended_by",
    )

    def __init__(
        self,
        request: web.Request,
        upstream: UpstreamProtocol,
        settings: WebSocketSettings,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._request = request
        assert request.transport is not None and upstream.transport is not None
        self._client: asyncio.Transport = request.transport
        self._upstream: asyncio.Transport = upstream.transport
        self._down = FrameTracker()  # upstream -> client
        self._up = FrameTracker()  # client -> upstream
        self._done = False
        self._waiter: asyncio.Future[None] | None = None
        self._client_blocked = False  # the client's write buffer is full: upstream paused
        self._client_paused = False  # reading from the client is paused
        # The close frame the gateway owes each side, sent at the next frame boundary.
        self._pending_down: bytes | None = None
        self._pending_up: bytes | None = None
        self.cut_down = False  # the gateway sent its own close frame to the client
        self.cut_up = False  # ... and to the upstream
        self.ended_by = ""  # why the gateway ended it, for the log
        self.bytes_in = 0  # from the client, for the metrics
        self.bytes_out = 0  # to the client
        self._close_wait: asyncio.TimerHandle | None = None
        self._idle = settings.idle_timeout
        self._last = loop.time()
        self._idle_handle: asyncio.TimerHandle | None = loop.call_at(
            self._last + self._idle, self._check_idle
        )
        self._lifetime_handle: asyncio.TimerHandle | None = None
        if settings.max_lifetime is not None:
            self._lifetime_handle = loop.call_later(
                settings.max_lifetime, self.go_away, "max_lifetime"
            )
        upstream.tunnel = self

    def start(self, early: bytes) -> None:
        """Splice: bytes the upstream sent after its 101 go first, then both ways."""
        if early:
            self.from_upstream(early)
        # aiohttp's server protocol feeds this everything after the request head, bytes that
        # came early included, from now on (web_protocol.RequestHandler.set_parser).
        protocol: Any = self._request.protocol
        protocol.set_parser(_ClientFeed(self))
        protocol.keep_alive(False)

    async def run(self) -> None:
        """The handler's task waits here until both ends are closed, draining the client."""
        writer = self._request.writer
        try:
            while not self._done:
                self._waiter = self._loop.create_future()
                await self._waiter
                if self._client_blocked and not self._done:
                    await writer.drain()
                    self._client_blocked = False
                    if not self._done:
                        self._upstream.resume_reading()
        except ConnectionError:
            pass
        finally:
            self._waiter = None
            if not self._done:
                # Cancelled (the end of the grace period): cut both connections.
                self._finish(abort=True)

    # --- bytes ---------------------------------------------------------------------------

    def from_client(self, data: bytes) -> None:
        self._last = self._loop.time()
        self.bytes_in += len(data)
        up = self._up
        if self.cut_up:
            up.feed(data)  # only followed: the gateway's close to the upstream was the last
            if up.closed and self.cut_down:
                self._finish()  # the client answered the gateway's close
            return
        if self._pending_up is not None:
            taken = up.feed(data, stop_at_boundary=True)
            self._upstream.write(data[:taken])
            if up.at_boundary:
                self._send_up(self._pending_up)
                up.feed(data[taken:])
            return
        self._upstream.write(data)
        up.feed(data)

    def from_upstream(self, data: bytes) -> None:
        self._last = self._loop.time()
        self.bytes_out += len(data)
        down = self._down
        if self.cut_down:
            down.feed(data)
            return
        if self._pending_down is not None:
            taken = down.feed(data, stop_at_boundary=True)
            self._client.write(data[:taken])
            if down.at_boundary:
                self._send_down(self._pending_down)
                down.feed(data[taken:])
            return
        self._client.write(data)
        down.feed(data)
        if not self._client_blocked and self._request.protocol.writing_paused:
            # The client reads slower than the upstream sends: stop reading the upstream
            # until the client's buffer drains (run() waits for that).
            self._client_blocked = True
            self._upstream.pause_reading()
            self._wake()

    def pause_client(self) -> None:
        """The upstream's write buffer is full: stop reading from the client."""
        if not self._client_paused and not self._done:
            self._client_paused = True
            self._client.pause_reading()

    def resume_client(self) -> None:
        if self._client_paused and not self._done:
            self._client_paused = False
            self._client.resume_reading()

    # --- ends ----------------------------------------------------------------------------

    def go_away(self, why: str) -> None:
        """Close both ends with 1001 at their next frame boundaries (drain, idle, lifetime)."""
        if self._done or self._close_wait is not None:
            return
        self.ended_by = why
        self._pending_down = close_frame(GOING_AWAY, "", masked=False)
        self._pending_up = close_frame(GOING_AWAY, "", masked=True)
        if self._down.at_boundary:
            self._send_down(self._pending_down)
        if self._up.at_boundary:
            self._send_up(self._pending_up)
        if self.cut_down and self._up.closed:
            # The client had closed already: it waited only for this answer.
            self._finish()
            return
        self._close_wait = self._loop.call_later(CLOSE_WAIT, self._finish, True)

    def client_lost(self) -> None:
        if self._done:
            return
        if not self.cut_up and not self._up.closed and self._up.at_boundary:
            # The upstream learns the client went away, as if it had said so.
            self._upstream.write(close_frame(GOING_AWAY, "", masked=True))
        self._finish()

    def upstream_lost(self) -> None:
        if self._done:
            return
        if not self.cut_down and not self._down.closed and self._down.at_boundary:
            # The upstream died without closing the WebSocket: tell the client at once.
            self._client.write(close_frame(INTERNAL_ERROR, "upstream went away", masked=False))
            self.ended_by = self.ended_by or "upstream lost"
        self._finish()

    def _send_down(self, frame: bytes) -> None:
        self._client.write(frame)
        self._pending_down = None
        self.cut_down = True
        if self._up.closed and self.cut_up:
            self._finish()

    def _send_up(self, frame: bytes) -> None:
        self._upstream.write(frame)
        self._pending_up = None
        self.cut_up = True

    def _check_idle(self) -> None:
        self._idle_handle = None
        if self._done:
            return
        due = self._last + self._idle
        if self._loop.time() >= due:
            self.go_away("idle_timeout")
        else:
            self._idle_handle = self._loop.call_at(due, self._check_idle)

    def _finish(self, abort: bool = False) -> None:
        if self._done:
            return
        self._done = True
        for handle in (self._idle_handle, self._lifetime_handle, self._close_wait):
            if handle is not None:
                handle.cancel()
        self._idle_handle = self._lifetime_handle = self._close_wait = None
        for transport in (self._client, self._upstream):
            # close() still sends what is buffered (a close frame, the last bytes); abort()
            # is for a peer that would not take them.
            if abort:
                transport.abort()
            else:
                transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
