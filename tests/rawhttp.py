"""A raw-socket HTTP/1.1 client for requests no well-behaved client library would send."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from multidict import CIMultiDict


@dataclass
class RawResponse:
    status: int | None  # None: the connection closed before a status line arrived
    reason: str
    headers: CIMultiDict[str]
    body: bytes
    raw: bytes


def parse_response(raw: bytes) -> RawResponse:
    # Skip interim 1xx responses (100 Continue) to the final one.
    while raw.startswith(b"HTTP/1.1 1") and b"\r\n\r\n" in raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        if head.split(b" ", 2)[1] == b"101":
            break
        raw = rest
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/"):
        return RawResponse(None, "", CIMultiDict(), b"", raw)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    if headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = dechunk(body)
    elif "Content-Length" in headers:
        body = body[: int(headers["Content-Length"])]
    return RawResponse(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, body, raw)


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


async def raw_request(
    port: int, payload: bytes, *, timeout: float = 5.0, read_until_close: bool = False
) -> RawResponse:
    """Send `payload` as is and read one response (or everything until close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        data = b""
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                data += chunk
                if not read_until_close and _complete(data):
                    break
        return parse_response(data)
    finally:
        writer.close()


def _complete(data: bytes) -> bool:
    response = parse_response(data)
    if response.status is None or 100 <= response.status < 200:
        return False
    _, _, rest = response.raw.partition(b"\r\n\r\n")
    if "Content-Length" in response.headers:
        return len(rest) >= int(response.headers["Content-Length"])
    if response.headers.get("Transfer-Encoding", "").lower() == "chunked":
        return rest.endswith(b"0\r\n\r\n")
    return response.status in (204, 304)


def get(path: str, *headers: str, method: str = "GET", body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: gateway.test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
