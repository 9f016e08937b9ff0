"""The client's request body as the upstream reads it: streamed, counted, capped, timed.

aiohttp's `client_max_size` does not apply to a streamed `request.content`, and the server has
no body timeout, so both are enforced here, chunk by chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from time import monotonic
from typing import TYPE_CHECKING

from aiohttp import StreamReader
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from apigw.shared.errors import ProblemError

if TYPE_CHECKING:
    from apigw.observability.metrics import RouteStats


class RequestBody:
    """An async iterable over the body for `ClientSession.request(data=...)`.

    When it stops the upload it records why in `error`: the session only reports a broken
    connection, and the proxy answers with this instead.
    """

    __slots__ = ("_content", "_deadline", "_idle_timeout", "_max_bytes", "_stats", "error", "sent")

    def __init__(
        self,
        content: StreamReader,
        *,
        max_bytes: int | None,
        idle_timeout: float | None,
        deadline: float | None = None,
        stats: RouteStats | None = None,
    ) -> None:
        self._stats = stats  # the route's counters: bytes are counted as they flow
        self._content = content
        self._max_bytes = max_bytes
        self._idle_timeout = idle_timeout
        self._deadline = deadline  # time.monotonic() by which the whole request must be done
        self.sent = 0  # bytes handed to the upstream connection so far
        self.error: ProblemError | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        read = self._content.readany
        idle = self._idle_timeout
        limit = self._max_bytes
        deadline = self._deadline
        while True:
            try:
                if idle is None:
                    chunk = await read()
                else:
                    async with asyncio.timeout(idle):
                        chunk = await read()
            except TimeoutError:
                self.error = ProblemError(408, "The request body stopped arriving.", close=True)
                raise self.error from None
            except (RequestPayloadError, HttpProcessingError):
                # Bad chunk framing: the upload is aborted, so the upstream never sees a
                # complete request; the parser's message quotes the body, so it is dropped.
                self.error = ProblemError(400, "The request body is malformed.", close=True)
                raise self.error from None
            if not chunk:
                return
            if deadline is not None and monotonic() > deadline:
                self.error = ProblemError(
                    408, "The request took longer than allowed in total.", close=True
                )
                raise self.error
            self.sent += len(chunk)
            if self._stats is not None:
                self._stats.bytes_in += len(chunk)
            if limit is not None and self.sent > limit:
                self.error = ProblemError(
                    413, f"The request body is larger than {limit} bytes.", close=True
                )
                raise self.error
            yield chunk
