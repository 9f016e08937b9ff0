"""The one raw-socket client: send bytes no client library would send, read every response,
and tell whether the server closed the connection."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from multidict import CIMultiDict

from tests.support import DEMO_KEY

KEY_LINE = f"x-api-key: {DEMO_KEY}"
HOST_LINE = "Host: gw.test"


@dataclass
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Exchange:
    replies: list[Reply]  # interim 1xx replies included
    closed: bool  # the server closed the connection (within `linger`) after its last reply
    raw: bytes = field(repr=False)  # every byte received

    @property
    def statuses(self) -> list[int]:
        return [r.status for r in self.replies if r.status >= 200]

    @property
    def reply(self) -> Reply:
        """The one final reply."""
        (final,) = (r for r in self.replies if r.status >= 200)
        return final


def request(
    target: str = "/users/1",
    *headers: str,
    method: str = "GET",
    version: str = "HTTP/1.1",
    body: bytes = b"",
    key: bool = True,
    host: bool = True,
) -> bytes:
    """A request head from text lines (latin-1), with Host and the demo key unless told not
    to, CRLF-terminated, then `body` as is."""
    lines = [f"{method} {target} {version}"]
    if host:
        lines.append(HOST_LINE)
    if key:
        lines.append(KEY_LINE)
    lines.extend(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*parts: bytes, trailers: Sequence[str] = ()) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return out + b"0\r\n" + b"".join(t.encode() + b"\r\n" for t in trailers) + b"\r\n"


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def split_replies(data: bytes, *, head: bool = False) -> tuple[list[Reply], bytes]:
    """Every complete response in `data`, and what is left over."""
    replies: list[Reply] = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0 or not data.startswith(b"HTTP/"):
            return replies, data
        lines = data[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: CIMultiDict[str] = CIMultiDict()
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.add(name.strip(), value.strip())
        rest = data[end + 4 :]
        if status < 200 or status in (204, 304) or head:
            body, data = b"", rest
        elif "Content-Length" in headers:
            length = int(headers["Content-Length"])
            if len(rest) < length:
                return replies, data
            body, data = rest[:length], rest[length:]
        elif headers.get("Transfer-Encoding", "").lower() == "chunked":
            stop = rest.find(b"\r\n0\r\n\r\n")
            if not rest.startswith(b"0\r\n\r\n") and stop < 0:
                return replies, data
            size = 5 if rest.startswith(b"0\r\n\r\n") else stop + 7
            body, data = dechunk(rest[:size]), rest[size:]
        else:
            body, data = rest, b""
        replies.append(Reply(status, headers, body))


async def exchange(
    port: int,
    *parts: bytes,
    pause: float = 0.0,
    expect: int = 1,
    head: bool = False,
    timeout: float = 5.0,
    linger: float = 0.0,
    probe: bytes = b"",
) -> Exchange:
    """Send `parts` (with `pause` seconds between them: the scenario, a slow client), read
    until `expect` final replies or a close, then watch `linger` seconds more to see whether
    the server closes, or send `probe`: the connection was kept open if it gets an answer
    (not among the replies returned)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = b""
    closed = False
    try:
        for i, part in enumerate(parts):
            if i and pause:
                await asyncio.sleep(pause)
            try:
                writer.write(part)
                await writer.drain()
            except ConnectionError:
                closed = True
                break
        async with asyncio.timeout(timeout):
            while True:
                replies, _ = split_replies(data, head=head)
                if sum(r.status >= 200 for r in replies) >= expect:
                    break
                chunk = await _read(reader)
                if not chunk:
                    closed = True
                    break
                data += chunk
        if not closed and linger:
            try:
                async with asyncio.timeout(linger):
                    while chunk := await _read(reader):
                        data += chunk
                    closed = True
            except TimeoutError:
                pass
        if not closed and probe:
            closed = not await _answered(reader, writer, probe, timeout)
    finally:
        writer.close()
    replies, _ = split_replies(data, head=head)
    return Exchange(replies, closed, data)


async def _answered(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, probe: bytes, timeout: float
) -> bool:
    try:
        writer.write(probe)
        await writer.drain()
    except ConnectionError:
        return False
    answer = b""
    async with asyncio.timeout(timeout):
        while not split_replies(answer)[0]:
            chunk = await _read(reader)
            if not chunk:
                return False
            answer += chunk
    return True


async def _read(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.read(65536)
    except ConnectionError:
        return b""
