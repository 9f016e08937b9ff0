"""Just enough of RFC 6455 framing for a byte tunnel to close it cleanly.

A tunnel forwards bytes as they come and never assembles, unmasks or inflates a frame; a
`FrameTracker` per direction follows the frame headers going by (2 to 14 bytes each, the payload
is skipped by count), so the gateway knows where a frame ends and may put its own close frame
there, and whether an endpoint has already sent its close frame.
"""

from __future__ import annotations

import os
import struct

OP_CLOSE = 0x8
GOING_AWAY = 1001  # the gateway is shutting down, or the tunnel reached its lifetime or idle limit
INTERNAL_ERROR = 1011  # the upstream went away without closing the WebSocket

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")


class FrameTracker:
    """Follows frame boundaries in one direction of a WebSocket connection."""

    __slots__ = ("_head", "_remaining", "closed")

    def __init__(self) -> None:
        self._remaining = 0  # payload bytes of the current frame still to come
        self._head = b""  # the start of a frame header split across reads
        self.closed = False  # a close frame went by: this endpoint will send no more frames

    @property
    def at_boundary(self) -> bool:
        """No frame is half sent: a control frame may go in here (RFC 6455 5.4)."""
        return not self._remaining and not self._head

    def feed(self, data: bytes, *, stop_at_boundary: bool = False) -> int:
        """Follow `data`; returns how many bytes of it were taken.

        Normally all of them. With `stop_at_boundary`, it stops where the frame under way ends
        (0 if none is), so a caller can forward up to there and put a frame of its own after.
        """
        pos = 0
        end = len(data)
        while True:
            if self._remaining:
                left = end - pos
                if left <= self._remaining:
                    self._remaining -= left
                    return end
                pos += self._remaining
                self._remaining = 0
                if stop_at_boundary:
                    return pos
            if pos >= end or (stop_at_boundary and not self._head):
                return pos
            head = self._head + data[pos : pos + 14] if self._head else data[pos : pos + 14]
            size = _header_size(head)
            if size is None or len(head) < size:
                self._head = head
                return end
            pos += size - len(self._head)
            self._head = b""
            second = head[1] & 0x7F
            if second == 126:
                length = _U16.unpack_from(head, 2)[0]
            elif second == 127:
                length = _U64.unpack_from(head, 2)[0]
            else:
                length = second
            if head[0] & 0x0F == OP_CLOSE:
                self.closed = True
            self._remaining = length
            if stop_at_boundary and not length:
                return pos


def _header_size(head: bytes) -> int | None:
    if len(head) < 2:
        return None
    second = head[1]
    size = 2 + (4 if second & 0x80 else 0)
    length = second & 0x7F
    if length == 126:
        size += 2
    elif length == 127:
        size += 8
    return size


def close_frame(code: int, reason: str, *, masked: bool) -> bytes:
    """A complete close frame; frames a client sends, so ours towards an upstream, are masked."""
    payload = _U16.pack(code) + reason.encode()
    assert len(payload) <= 125  # a control frame's payload limit
    if not masked:
        return bytes((0x80 | OP_CLOSE, len(payload))) + payload
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | OP_CLOSE, 0x80 | len(payload))) + mask + body
