"""Upstream targets of a route and the choice among them.

A route owns an `UpstreamPool`; the proxy asks it for a target per request. Balancing and
health state live here, so the proxy does not change when they grow.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import aiohttp

from apigw.config import Route


@dataclass(slots=True, eq=False)
class Target:
    base: str  # scheme://host:port[/base-path], no trailing slash
    in_flight: int = 0


@dataclass(slots=True, eq=False)
class UpstreamPool:
    """The targets of one route, picked round robin."""

    route: Route
    targets: tuple[Target, ...]
    timeout: aiohttp.ClientTimeout
    _cycle: itertools.cycle[Target] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cycle = itertools.cycle(self.targets)

    def pick(self) -> Target:
        return next(self._cycle)


def make_pool(route: Route) -> UpstreamPool:
    # sock_read bounds the wait for each chunk, not the whole response, so long streams live;
    # connect also bounds the wait for a free pooled connection.
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=route.timeouts.connect,
        sock_connect=route.timeouts.connect,
        sock_read=route.timeouts.read,
    )
    return UpstreamPool(
        route=route, targets=tuple(Target(base=u) for u in route.upstreams), timeout=timeout
    )
