"""Upstream targets of a route: the choice among them and their passive health.

A route owns an `UpstreamPool`; the proxy asks it for a target per request and tells it how
the attempt went. A target that fails `max_failures` times in a row is ejected for
`eject_seconds`, then gets one trial request (half-open): success puts it back, failure
ejects it again. Active checks (apigw/health.py) mark targets down and up on their own.
"""

from __future__ import annotations

import itertools
import logging
import math
from time import monotonic

import aiohttp

from apigw.config import Health, Route
from apigw.observability.metrics import RouteStats

log = logging.getLogger("apigw.upstreams")


class Target:
    """One base URL of a route and what the gateway knows about it."""

    __slots__ = (
        "base",
        "checked_down",
        "ejected",
        "ejected_until",
        "failures",
        "in_flight",
        "trial",
    )

    def __init__(self, base: str) -> None:
        self.base = base  # scheme://host:port[/base-path], no trailing slash
        self.in_flight = 0  # requests using it now, for least_outstanding
        self.failures = 0  # consecutive failed attempts
        self.ejected = False  # taken out by passive health
        self.ejected_until = 0.0  # monotonic() when a trial may go to it
        self.trial = False  # the single half-open trial request is under way
        self.checked_down = False  # the last active check failed

    @property
    def available(self) -> bool:
        return not self.ejected and not self.checked_down

    def __repr__(self) -> str:
        return f"Target({self.base!r})"


def make_client_timeout(route: Route) -> aiohttp.ClientTimeout:
    """Per attempt: connect, and the longest wait for each chunk (not the whole response,
    so long streams live). The whole-request limit caps every single wait too."""
    timeouts = route.timeouts
    total = timeouts.total if timeouts.total is not None else math.inf
    return aiohttp.ClientTimeout(
        total=None,
        # connect also bounds the wait for a free pooled connection.
        connect=min(timeouts.connect, total),
        sock_connect=min(timeouts.connect, total),
        sock_read=min(timeouts.read, total),
    )


class UpstreamPool:
    """The targets of one route, picked round robin or by fewest outstanding requests."""

    __slots__ = (
        "_cycle",
        "_down",
        "_least",
        "health",
        "route",
        "stats",
        "stream_paths",
        "stream_prefixes",
        "stream_timeout",
        "stream_types",
        "targets",
        "timeout",
        "total",
    )

    def __init__(self, route: Route, stats: RouteStats | None = None) -> None:
        self.route = route
        # The route's counters (apigw/metrics.py), kept by the worker across reloads.
        self.stats = stats if stats is not None else RouteStats(route.prefix)
        self.health: Health = route.health
        self.targets = tuple(Target(base) for base in route.upstreams)
        self.timeout = make_client_timeout(route)
        self.total = route.timeouts.total
        # Streams (apigw/streams.py): by path prefix, known before the upstream answers, or
        # by the answer's media type. Only the stream idle timeout applies to them.
        streaming = route.streaming
        self.stream_paths = tuple((p, p + "/") for p in streaming.paths)
        self.stream_types = streaming.content_types
        self.stream_prefixes = tuple(streaming.content_types)
        self.stream_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=route.timeouts.connect,
            sock_connect=route.timeouts.connect,
            sock_read=streaming.idle_timeout,
        )
        self._cycle = itertools.cycle(self.targets)
        self._least = route.balance == "least_outstanding"
        # Targets ejected or checked down; while none is, picking skips every health test.
        self._down = 0

    def is_stream_path(self, path: str) -> bool:
        return any(path == p or path.startswith(slash) for p, slash in self.stream_paths)

    def pick(self) -> Target | None:
        """The target for a first attempt, or None when every target is down."""
        if self._down == 0:
            if self._least:
                return self._least_outstanding(self.targets)
            return next(self._cycle)
        return self._choose(self.targets)

    def pick_retry(self, tried: list[Target]) -> Target | None:
        """A target for another attempt: one not tried yet, or the only one there is."""
        others = tuple(t for t in self.targets if t not in tried)
        if not others and len(self.targets) == 1:
            others = self.targets
        return self._choose(others) if others else None

    def _choose(self, candidates: tuple[Target, ...]) -> Target | None:
        if self._down:
            now = monotonic()
            for target in candidates:
                if (
                    target.ejected
                    and not target.trial
                    and not target.checked_down
                    and now >= target.ejected_until
                ):
                    target.trial = True
                    return target
        if self._least:
            return self._least_outstanding(tuple(t for t in candidates if t.available))
        for _ in range(len(self.targets)):
            target = next(self._cycle)
            if target.available and target in candidates:
                return target
        return None

    def _least_outstanding(self, candidates: tuple[Target, ...]) -> Target | None:
        if not candidates:
            return None
        # Ties go round robin, so an idle pool still spreads its load.
        start = next(self._cycle)
        best = start if start in candidates else candidates[0]
        for target in candidates:
            if target.in_flight < best.in_flight:
                best = target
        return best

    def succeeded(self, target: Target) -> None:
        if target.failures or target.ejected:
            target.failures = 0
            if target.ejected:
                log.info(
                    "upstream %s of %s passed its trial; back in rotation",
                    target.base,
                    self.route.prefix,
                )
                self._set(target, ejected=False)
            target.trial = False

    def failed(self, target: Target) -> None:
        target.failures += 1
        if target.trial:
            target.trial = False
            target.ejected_until = monotonic() + self.health.eject_seconds
            self._count_ejection(target)
            log.warning(
                "upstream %s of %s failed its trial; ejected for %gs",
                target.base,
                self.route.prefix,
                self.health.eject_seconds,
            )
        elif not target.ejected and target.failures >= self.health.max_failures:
            target.ejected_until = monotonic() + self.health.eject_seconds
            self._set(target, ejected=True)
            self._count_ejection(target)
            log.warning(
                "upstream %s of %s ejected for %gs after %d consecutive failures",
                target.base,
                self.route.prefix,
                self.health.eject_seconds,
                target.failures,
            )

    def _count_ejection(self, target: Target) -> None:
        ejections = self.stats.ejections
        ejections[target.base] = ejections.get(target.base, 0) + 1

    def released(self, target: Target) -> None:
        """The attempt ended for a reason that says nothing about the target."""
        target.trial = False

    def checked(self, target: Target, ok: bool) -> None:
        """The result of an active health check."""
        if ok == target.checked_down:
            log.log(
                logging.INFO if ok else logging.WARNING,
                "upstream %s of %s %s its health check",
                target.base,
                self.route.prefix,
                "passed" if ok else "failed",
            )
            self._set(target, checked_down=not ok)

    def _set(
        self, target: Target, *, ejected: bool | None = None, checked_down: bool | None = None
    ) -> None:
        was_down = not target.available
        if ejected is not None:
            target.ejected = ejected
        if checked_down is not None:
            target.checked_down = checked_down
        self._down += (not target.available) - was_down

    def ready(self) -> bool:
        """At least one target can take a request now or after its ejection ends."""
        if self._down < len(self.targets):
            return True
        now = monotonic()
        return any(
            not t.checked_down and not t.trial and now >= t.ejected_until for t in self.targets
        )

    def retry_after(self) -> int:
        """Whole seconds until some target may be tried again (for Retry-After)."""
        now = monotonic()
        waits = [
            self.health.check_interval or 1.0 if t.checked_down else t.ejected_until - now
            for t in self.targets
            if not t.available
        ]
        return max(1, math.ceil(min(waits, default=1)))
