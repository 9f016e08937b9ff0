"""The gateway's /docs fills in from its backends, off the request path.

At start-up one background task per distinct set of upstreams (routes that share their
upstreams share one document) fetches the backend's OpenAPI document with the gateway secret,
a few at a time, and merges everything fetched so far into the live document that /docs serves.
A backend that is down, or answers no usable document, is asked again after a growing delay
(capped), until its part is merged. The proxy never waits for any of this.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import hdrs, web

from apigw.config import Route
from apigw.openapi.merge import Part, check_document, merge_documents
from apigw.routing import RouteTable
from apigw.shared.appkeys import SETTINGS_KEY
from apigw.shared.headers import GATEWAY_SECRET_HEADER, REQUEST_ID_HEADER, request_id_from
from apigw.shared.reserved import SPEC_PATH

log = logging.getLogger("apigw.docs")

# A backend's document is small; anything bigger is a mistake, not a document.
MAX_DOCUMENT_BYTES = 4 << 20
# Fetches under way at once: a config of a thousand routes must not open a thousand
# connections (or run a thousand retry loops) at start-up.
MAX_CONCURRENT_FETCHES = 4
INTRO = (
    "Every operation goes through the gateway and needs an API key: click **Authorize** and "
    "enter yours for `x-api-key`."
)


class DocumentError(Exception):
    """A backend's document could not be had; the message names the URL, never a secret."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between attempts: `first`, then multiplied by `factor`, never above `cap`."""

    first: float = 0.1
    factor: float = 2.0
    cap: float = 30.0
    fetch_timeout: float = 10.0

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * self.factor, self.cap)


class DocsPublisher:
    """Keeps the documents fetched so far and rewrites the live document from all of them."""

    def __init__(self, spec: dict[str, Any], routes: Sequence[Route]) -> None:
        self._spec = spec
        self._prefixes = tuple(route.prefix for route in routes)
        self._table: RouteTable[str] = RouteTable({p: p for p in self._prefixes})
        self._base_components = copy.deepcopy(spec["components"])
        self._documents: dict[str, Mapping[str, Any]] = {}
        self.publish()

    @property
    def pending(self) -> tuple[str, ...]:
        return tuple(p for p in self._prefixes if p not in self._documents)

    def add(self, prefix: str, document: Mapping[str, Any]) -> None:
        self.add_shared((prefix,), document)

    def add_shared(self, prefixes: Iterable[str], document: Mapping[str, Any]) -> None:
        """One document for every route in `prefixes`, merged in one publish."""
        for prefix in prefixes:
            self._documents[prefix] = document
        self.publish()

    def publish(self) -> None:
        # Config order, not arrival order: the same backends always give the same names.
        parts = [Part(p, self._documents[p]) for p in self._prefixes if p in self._documents]
        merged = merge_documents(self._base_components, parts, self._table)
        # Swapped in with no await in between, so /docs never serves half a merge.
        spec = self._spec
        spec["paths"] = merged.paths
        spec["components"] = merged.components
        if merged.tags:
            spec["tags"] = merged.tags
        description = INTRO
        if self.pending:
            description += (
                "\n\nStill waiting for the API description of "
                + ", ".join(f"`{p}`" for p in self.pending)
                + ": those routes work, and this page lists them once their backend answers."
            )
        spec["info"]["description"] = description


async def fetch_document(
    session: aiohttp.ClientSession,
    upstreams: Sequence[str],
    secret: str,
    limits: aiohttp.ClientTimeout,
) -> dict[str, Any]:
    """The first usable document among `upstreams` (one route's), or DocumentError."""
    problems = []
    for base in upstreams:
        try:
            return await _fetch_one(session, base + SPEC_PATH, secret, limits)
        except DocumentError as exc:
            problems.append(str(exc))
    raise DocumentError("; ".join(problems))


async def _fetch_one(
    session: aiohttp.ClientSession, url: str, secret: str, limits: aiohttp.ClientTimeout
) -> dict[str, Any]:
    headers = {
        GATEWAY_SECRET_HEADER: secret,
        REQUEST_ID_HEADER: request_id_from(None),
        hdrs.ACCEPT: "application/json",
    }
    try:
        # Never follow a redirect: it would carry the secret to wherever it points.
        async with session.get(
            url, headers=headers, allow_redirects=False, timeout=limits
        ) as response:
            if response.status != 200:
                raise DocumentError(f"{url}: HTTP {response.status}")
            # The session does not decompress, and asks for no compression.
            if response.headers.get(hdrs.CONTENT_ENCODING, "identity") != "identity":
                raise DocumentError(f"{url}: compressed answer")
            body = await _read_capped(response, url)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        # The exception's repr may hold the request headers, secret included: type name only.
        raise DocumentError(f"{url}: {type(exc).__name__}") from None
    try:
        document = json.loads(body)
        check_document(document)
    except ValueError as exc:
        raise DocumentError(f"{url}: not an OpenAPI 3.0 document: {exc}") from None
    result: dict[str, Any] = document
    return result


async def _read_capped(response: aiohttp.ClientResponse, url: str) -> bytes:
    length = response.content_length
    if length is not None and length > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
    body = bytearray()
    async for chunk in response.content.iter_chunked(65536):
        body += chunk
        if len(body) > MAX_DOCUMENT_BYTES:
            raise DocumentError(f"{url}: document larger than {MAX_DOCUMENT_BYTES} bytes")
    return bytes(body)


def make_docs_session() -> aiohttp.ClientSession:
    """A session of its own, so the fetches never take, close or add the proxy's pooled
    connections: one connection per fetch, closed after it (a few fetches per start-up).
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True, limit=MAX_CONCURRENT_FETCHES),
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=(hdrs.ACCEPT_ENCODING, hdrs.USER_AGENT),
    )


async def merge_when_ready(
    session: aiohttp.ClientSession,
    secret: str,
    publisher: DocsPublisher,
    routes: Sequence[Route],
    backoff: Backoff,
    slots: asyncio.Semaphore,
) -> None:
    """Fetch the document of `routes` (which share their upstreams) until one arrives, then
    merge it for all of them; runs in the background, one fetch at a time per `slots`."""
    upstreams = routes[0].upstreams
    names = _describe(routes)
    connect = min(route.timeouts.connect for route in routes)
    limits = aiohttp.ClientTimeout(total=backoff.fetch_timeout, sock_connect=connect)
    for attempt, delay in enumerate(backoff.delays(), start=1):
        try:
            async with slots:
                document = await fetch_document(session, upstreams, secret, limits)
        except DocumentError as exc:
            # Loud once; a backend that stays down for hours should not flood the log.
            level = logging.WARNING if attempt == 1 else logging.DEBUG
            log.log(level, "no API description for %s yet (%s)", names, exc)
            await asyncio.sleep(delay)
            continue
        try:
            publisher.add_shared((route.prefix for route in routes), document)
        except Exception:
            # A bug in the merge must show, not end this task silently.
            log.exception("could not merge the API description of %s", names)
            return
        log.info("merged the API description of %s after %d attempt(s)", names, attempt)
        return


def _describe(routes: Sequence[Route]) -> str:
    # A log line names a few routes, not a thousand.
    shown = ", ".join(route.prefix for route in routes[:3])
    more = len(routes) - 3
    return shown if more <= 0 else f"{shown} and {more} more route(s)"


def routes_by_upstreams(routes: Iterable[Route]) -> list[list[Route]]:
    """Routes grouped by their upstream list, in config order: one document fetch per group."""
    groups: dict[tuple[str, ...], list[Route]] = {}
    for route in routes:
        groups.setdefault(tuple(route.upstreams), []).append(route)
    return list(groups.values())


def setup_backend_docs(
    app: web.Application, spec: dict[str, Any], backoff: Backoff | None = None
) -> DocsPublisher:
    """Fill `spec` (the live /docs document) from the backends once the app has started."""
    settings = app[SETTINGS_KEY]
    publisher = DocsPublisher(spec, settings.routes)
    policy = backoff or Backoff()

    async def backend_docs_ctx(app: web.Application) -> AsyncIterator[None]:
        session = make_docs_session()
        slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)
        tasks = [
            asyncio.create_task(
                merge_when_ready(session, settings.gateway_secret, publisher, group, policy, slots)
            )
            for group in routes_by_upstreams(settings.routes)
        ]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()

    app.cleanup_ctx.append(backend_docs_ctx)
    return publisher
