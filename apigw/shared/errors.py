"""The one error path: `ProblemError` carries a status, `problem_response` renders RFC 9457 JSON.

Both products raise `ProblemError`; once a response has started, `abort_connection` is the
only honest answer left.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus

from aiohttp import web

from apigw.shared.headers import REQUEST_ID_HEADER

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    """An error answered to the client with `status` and a problem+json body.

    `detail` is shown to the client: it must never contain a key, a secret or raw client input.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        title: str | None = None,
        extra: Mapping[str, object] | None = None,
        close: bool = False,
        problem_type: str = "about:blank",
        reason: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.problem_type = problem_type  # RFC 9457 "type": a URI naming the kind of problem
        # Why the gateway answered itself, as the access log and the metrics name it (a small
        # fixed vocabulary, see apigw/exchange.py); None: derived from the status.
        self.reason = reason
        self.close = close  # the connection cannot be reused (e.g. an unread body is left)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.title = title
        self.extra = dict(extra or {})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    detail: str,
    request_id: str,
    *,
    headers: Mapping[str, str] | None = None,
    title: str | None = None,
    extra: Mapping[str, object] | None = None,
    problem_type: str = "about:blank",
    trace_id: str | None = None,
) -> web.Response:
    body: dict[str, object] = {
        "type": problem_type,
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
        "request_id": request_id,
    }
    if trace_id is not None:
        body["trace_id"] = trace_id
    if extra:
        body.update(extra)
    response = web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def render_error(error: ProblemError, request_id: str, trace_id: str | None = None) -> web.Response:
    response = problem_response(
        error.status,
        error.detail,
        request_id,
        headers=error.headers,
        title=error.title,
        extra=error.extra,
        problem_type=error.problem_type,
        trace_id=trace_id,
    )
    if error.close:
        response.force_close()
    return response


def abort_connection(request: web.BaseRequest) -> None:
    """Cut the client connection, so a broken stream never looks like a complete reply."""
    transport = request.transport
    if transport is not None:
        transport.abort()
