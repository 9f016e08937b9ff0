"""A raw WebSocket client for the tests: it sends frames exactly as told (fragments, masks) and
reads frames one by one, so a test sees the frames the gateway delivered, not messages."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from dataclasses import dataclass


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes


def mask_payload(data: bytes, mask: bytes) -> bytes:
    size = len(data)
    if not size:
        return b""
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if masked else 0
    size = len(payload)
    if size < 126:
        head = bytes((first, mask_bit | size))
    elif size < 65536:
        head = bytes((first, mask_bit | 126)) + struct.pack("!H", size)
    else:
        head = bytes((first, mask_bit | 127)) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + mask_payload(payload, mask)


class RawWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.head = ""

    @classmethod
    async def connect(
        cls, port: int, path: str, headers: dict[str, str], *, extra: bytes = b""
    ) -> RawWebSocket:
        """Send the handshake (and `extra` bytes right behind it, in the same write)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            f"Sec-WebSocket-Key: {key}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + extra)
        ws = cls(reader, writer)
        ws.head = (await reader.readuntil(b"\r\n\r\n")).decode()
        ws.status = int(ws.head.split(" ", 2)[1])
        return ws

    async def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        self.writer.write(encode_frame(opcode, payload, fin=fin))
        await self.writer.drain()

    async def read_frame(self) -> Frame:
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        assert not second & 0x80, "a server's frames are never masked"
        payload = await self.reader.readexactly(size)
        return Frame(bool(first & 0x80), first & 0x0F, payload)

    def close(self) -> None:
        self.writer.close()
