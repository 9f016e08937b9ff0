"""The parts under the WebSocket tunnel and the streams: frame tracking, their config, and the
aiohttp internals they rely on (these fail loudly when an aiohttp upgrade changes them)."""

from __future__ import annotations

import inspect
import random

import pytest
from aiohttp import client_proto, web_protocol
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_writer import StreamWriter

from apigw.config import ConfigError
from apigw.streaming.frames import FrameTracker, close_frame
from apigw.streaming.websocket import accept_for
from tests.support.apps import make_settings
from tests.support.processes import fresh_interpreter
from tests.support.ws_client import encode_frame


def frames_stream(seed: int) -> tuple[bytes, list[int]]:
    """Frames of every header size, and the offsets where each ends."""
    rng = random.Random(seed)
    data = b""
    ends = []
    for size in (0, 1, 125, 126, 65535, 65536, 70000, *(rng.randint(0, 300) for _ in range(50))):
        data += encode_frame(rng.choice((0x0, 0x1, 0x2, 0x9)), rng.randbytes(size), fin=True)
        ends.append(len(data))
    return data, ends


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 14, 100, 4096, 1 << 20])
def test_tracker_knows_every_frame_boundary_however_the_bytes_are_cut(chunk: int) -> None:
    data, ends = frames_stream(seed=chunk)
    tracker = FrameTracker()
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        assert tracker.feed(piece) == len(piece)
        assert tracker.at_boundary == (start + len(piece) in ends)


def test_stopping_at_a_boundary_finds_the_end_of_the_frame_under_way() -> None:
    data, ends = frames_stream(seed=0)
    rng = random.Random(1)
    for cut in [0, *ends[:-1], *(rng.randrange(len(data)) for _ in range(300))]:
        tracker = FrameTracker()
        tracker.feed(data[:cut])
        taken = tracker.feed(data[cut:], stop_at_boundary=True)
        boundary = min(e for e in (0, *ends) if e >= cut)
        assert taken == boundary - cut
        assert tracker.at_boundary


def test_tracker_sees_a_close_frame_go_by() -> None:
    tracker = FrameTracker()
    tracker.feed(encode_frame(0x1, b"hello"))
    assert not tracker.closed
    tracker.feed(encode_frame(0x8, (1000).to_bytes(2, "big")))
    assert tracker.closed and tracker.at_boundary


def test_close_frames_are_masked_towards_an_upstream_only() -> None:
    plain = close_frame(1001, "", masked=False)
    assert plain == b"\x88\x02\x03\xe9"
    masked = close_frame(1001, "bye", masked=True)
    assert masked[0] == 0x88 and masked[1] == 0x80 | 5
    mask = masked[2:6]
    assert bytes(b ^ mask[i % 4] for i, b in enumerate(masked[6:])) == b"\x03\xe9bye"


def test_accept_matches_rfc_6455() -> None:
    # The example of RFC 6455, section 1.3.
    assert accept_for("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"websocket": {"idle_timeout": 0}}, "routes[0].websocket.idle_timeout: must be at least"),
        ({"websocket": {"max_connections": 0}}, "routes[0].websocket.max_connections"),
        ({"websocket": {"key_protocol": "maybe"}}, "routes[0].websocket.key_protocol"),
        ({"websocket": {"nope": 1}}, "routes[0].websocket.nope: unknown field"),
        ({"streaming": {"paths": ["/other"]}}, "routes[0].streaming.paths[0]: '/other' is not"),
        ({"streaming": {"paths": ["/a/"]}}, "routes[0].streaming.paths[0]: expected a plain"),
        ({"streaming": {"content_types": ["text"]}}, "routes[0].streaming.content_types"),
    ],
    ids=["idle", "max_connections", "key_protocol", "unknown", "outside", "slash", "type"],
)
def test_bad_websocket_and_streaming_settings_name_the_field(
    route: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings({"/a": ["http://127.0.0.1:1"]}, route_extra={"/a": route})
    assert str(caught.value).startswith(message)


def test_routes_inherit_top_level_websocket_and_streaming_settings() -> None:
    settings = make_settings(
        {"/a": ["http://127.0.0.1:1"], "/b": ["http://127.0.0.1:2"]},
        extra={"websocket": {"idle_timeout": 7}, "streaming": {"idle_timeout": 9}},
        route_extra={"/b": {"websocket": {"max_lifetime": None}}},
    )
    a, b = settings.routes
    assert a.websocket.idle_timeout == b.websocket.idle_timeout == 7
    assert a.websocket.max_lifetime == 86400 and b.websocket.max_lifetime is None
    assert a.streaming.idle_timeout == 9
    assert a.streaming.content_types == {"text/event-stream"}


def test_the_aiohttp_internals_the_tunnel_and_streams_use_are_there() -> None:
    # The tunnel takes the client connection over the way aiohttp's own WebSocketResponse does:
    # RequestHandler.set_parser(parser) replays the bytes that came after the head, then
    # feeds every read to parser.feed_data (returning (eof, tail)); connection_lost calls
    # parser.feed_eof(). tests/system/test_websocket.py checks the behaviour end to end.
    params = list(inspect.signature(web_protocol.RequestHandler.set_parser).parameters)
    assert params[:2] == ["self", "parser"]
    assert "_message_tail" in web_protocol.RequestHandler.__slots__
    assert "self._payload_parser.feed_eof()" in inspect.getsource(
        web_protocol.RequestHandler.connection_lost
    )
    # Backpressure towards the client: the protocol says when its transport is full, and the
    # writer waits for it to drain.
    assert isinstance(inspect.getattr_static(BaseProtocol, "writing_paused"), property)
    assert inspect.iscoroutinefunction(StreamWriter.drain)
    # A stream swaps the pooled connection's read timer for its idle timeout.
    handler = client_proto.ResponseHandler
    assert isinstance(inspect.getattr_static(handler, "read_timeout"), property)
    assert inspect.getattr_static(handler, "read_timeout").fset is not None
    assert callable(handler.start_timeout)


def test_the_tunnel_code_is_loaded_by_the_first_websocket_not_at_start_up() -> None:
    # A worker that never sees a WebSocket does not carry the tunnel's modules. A fresh
    # interpreter: this one imported them already.
    script = """
import asyncio, sys
from aiohttp.test_utils import TestClient, TestServer
from gateway import create_app
from tests.support import KEY
from tests.support.apps import make_settings

TUNNEL = ("apigw.streaming.frames", "apigw.streaming.tunnel", "apigw.streaming.upgrade")

async def main():
    settings = make_settings({"/users": ["http://127.0.0.1:9"]})
    async with TestClient(TestServer(await create_app(settings))) as client:
        before = any(m in sys.modules for m in TUNNEL)
        plain = await client.get("/users/1", headers=KEY)
        after_plain = any(m in sys.modules for m in TUNNEL)
        upgrade = await client.get("/users/live", headers={
            **KEY, "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        loaded = all(m in sys.modules for m in TUNNEL)
        print(before, after_plain, loaded, plain.status, upgrade.status)

asyncio.run(main())
"""
    done = fresh_interpreter(script)
    assert done.stdout.split() == ["False", "False", "True", "502", "502"], done.stderr
