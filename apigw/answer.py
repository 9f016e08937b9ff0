"""An upstream answer whose whole body came with its head, relayed in one write.

Most answers of an API are small: by the time the upstream's head is parsed, the body is in
too. aiohttp's `web.Response` would send it in one write as well, but on the way it runs
through every case a response can be (text bodies, charsets, payload objects, cookies,
compression, chunking) in about 80 lines of Python per request. `WholeAnswer` is a
`web.StreamResponse` that frames exactly what `web.Response(status=, reason=, headers=,
body=)` frames for such an answer (Content-Length, the default Content-Type, Date,
Connection, no body where none may be sent) and then uses the connection's own writer: the
status line, headers and body leave in one write. It reaches into aiohttp's response
internals and its head serializer; tests/gateway/test_answer.py compares it with
`web.Response` byte for byte across methods, statuses, bodies, HTTP versions, keep-alive and
the RateLimit fields, and fails if an upgrade changes either.

The gateway's RateLimit fields are written as two lines of their own after the head aiohttp
serializes. aiohttp's serializer checks and copies a header one character at a time, about
35 instructions a byte: the two fields came to 3.3 k instructions per request, and adding
them to the multidict first to 2 k more. Their texts are the gateway's own (validated
policy names and numbers), so they need neither.
"""

from __future__ import annotations

from aiohttp import HttpVersion10, HttpVersion11, hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import must_be_empty_body, rfc822_formatted_time, should_remove_content_length
from aiohttp.http import SERVER_SOFTWARE
from aiohttp.http_writer import _serialize_headers
from multidict import CIMultiDict


class WholeAnswer(web.StreamResponse):
    """`web.Response(status=status, reason=reason, headers=headers, body=body)` for an
    upstream's answer: `body` is all of it (so a Content-Length among `headers` is its
    length), `headers` hold no Transfer-Encoding (hop-by-hop, dropped) and become the
    response's own, uncopied. `fields`, when given, are the gateway's `RateLimit-Policy`
    and `RateLimit` texts, sent beside any the upstream sent."""

    def __init__(
        self,
        status: int,
        reason: str | None,
        headers: CIMultiDict[str],
        body: bytes,
        fields: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(status=status, reason=reason, _real_headers=headers)
        self._whole = body
        self._fields = fields

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent:
            return None
        method = request.method
        status = self._status
        headers = self._headers
        body = self._whole
        # Framed as web.Response frames it: the upstream's Content-Length stays (a HEAD's
        # tells the length of the GET), else the body's, except an empty one on a 304 or a
        # HEAD; none where no body may be; the default Content-Type on a non-empty body.
        if hdrs.CONTENT_LENGTH not in headers and (
            body or (status != 304 and method != hdrs.METH_HEAD)
        ):
            headers[hdrs.CONTENT_LENGTH] = str(len(body))
        empty = self._must_be_empty_body = must_be_empty_body(method, status)
        if empty:
            body = b""
            if should_remove_content_length(method, status):
                headers.popall(hdrs.CONTENT_LENGTH, None)
            headers.popall(hdrs.TRANSFER_ENCODING, None)
        elif body:
            headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
        if hdrs.DATE not in headers:
            headers[hdrs.DATE] = rfc822_formatted_time()
        headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = self._keep_alive = request.keep_alive
        version = request.version
        if hdrs.CONNECTION not in headers:
            if keep_alive:
                if version == HttpVersion10:
                    headers[hdrs.CONNECTION] = "keep-alive"
            elif version == HttpVersion11:
                headers[hdrs.CONNECTION] = "close"
        self._req = request
        await request._prepare_hook(self)
        writer = request._payload_writer
        # What writer.write_headers() buffers, written here with the body in one write.
        head = _serialize_headers(
            f"HTTP/{version[0]}.{version[1]} {status} {self._reason}", headers
        )
        fields = self._fields
        if fields is not None:
            # In place of the blank line that ends the head, the fields and then that line.
            tail = f"RateLimit-Policy: {fields[0]}\r\nRateLimit: {fields[1]}\r\n\r\n"
            head = head[:-2] + tail.encode()
        await writer.write_eof(head + body)
        self._eof_sent = True
        self._req = None
        self._body_length = writer.output_size
        return None
