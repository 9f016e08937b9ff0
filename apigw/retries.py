"""When a failed upstream attempt may be sent again.

A request whose body has not started (connection refused or timed out, or a pooled
connection closed by the backend as the request went out: the keep-alive race) is retried
for every method. Later failures are retried only for idempotent requests without a body.
A body that has started to go out is never sent again: those bytes are gone.
"""

from __future__ import annotations

import aiohttp

from apigw.bodies import RequestBody
from apigw.config import Route

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# ClientOSError covers ClientConnectorError (refused, unreachable) and connection resets.
_BEFORE_THE_BODY = (
    aiohttp.ClientOSError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ServerDisconnectedError,
)


def may_retry(
    route: Route, attempts: int, exc: BaseException, method: str, body: RequestBody | None
) -> bool:
    """Whether a request that failed `attempts` times may be sent once more."""
    if attempts > route.retries:
        return False
    if body is not None and body.sent:
        return False
    if isinstance(exc, _BEFORE_THE_BODY):
        return True
    # A read timeout or a bad answer: the upstream may have acted on the request already.
    return body is None and method in IDEMPOTENT_METHODS
