"""The gateway's metrics: plain per-worker counters on the hot path, a snapshot for the scrape.

A request touches only its route's `RouteStats` (preallocated: a few int increments, a bucket
found by bisect); no lock, no file, no label lookup. Once a second, and at each scrape, the
worker turns its counters into a `Snapshot` (a JSON-able dict); apigw/metrics_share.py sums the
snapshots of every worker, and `render` writes the Prometheus text or OpenMetrics exposition.
Every label value comes from the config: the route prefix or `unmatched`, one of the forwarded
methods or `OTHER`, a configured consumer name or `anonymous`.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from apigw import __version__
from apigw.request_gate import FORWARDED_METHODS

if TYPE_CHECKING:
    from apigw.upstreams import UpstreamPool

# Seconds: a proxy answers in well under a millisecond when it refuses, and may wait a minute
# for a slow backend.
BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
METHODS = (*sorted(FORWARDED_METHODS), "OTHER")
METHOD_INDEX = {method: i for i, method in enumerate(METHODS)}
OTHER_METHOD = len(METHODS) - 1
UNMATCHED = "unmatched"
ANONYMOUS = "anonymous"
# Seconds per window of the status page's recent history, and how many windows it keeps.
WINDOW = 5
HISTORY_WINDOWS = 60

# A snapshot: {"counters"|"gauges": {family: {labels: value}},
#              "histograms": {family: {labels: [bucket counts..., sum]}}, ...}
Snapshot = dict[str, Any]

# name: (type, help). Counters end in _total; OpenMetrics names the family without it.
FAMILIES: dict[str, tuple[str, str]] = {
    "gateway_requests_total": (
        "counter",
        "Requests answered, by route, method, status code and who answered (gateway or upstream).",
    ),
    "gateway_consumer_requests_total": (
        "counter",
        "Requests by route, consumer and status class.",
    ),
    "gateway_request_duration_seconds": (
        "histogram",
        "Time from the request to the end of the gateway's answer, by route.",
    ),
    "gateway_upstream_duration_seconds": (
        "histogram",
        "Time from sending to the upstream until its response head arrived, by route.",
    ),
    "gateway_requests_in_flight": ("gauge", "Requests under way, by route."),
    "gateway_bytes_total": (
        "counter",
        "Body bytes by route and direction (in: from clients, out: to clients), as they flow.",
    ),
    "gateway_upstream_errors_total": (
        "counter",
        "Failed upstream attempts by route and kind (connect, timeout, reset, protocol).",
    ),
    "gateway_upstream_retries_total": ("counter", "Upstream attempts that were retries."),
    "gateway_upstream_target_up": (
        "gauge",
        "1 when every worker has the target in rotation, else 0.",
    ),
    "gateway_upstream_target_in_flight": ("gauge", "Requests under way at each target."),
    "gateway_upstream_ejections_total": (
        "counter",
        "Times a target was taken out of rotation by passive health.",
    ),
    "gateway_rejections_total": (
        "counter",
        "Requests the gateway refused itself, by route and reason.",
    ),
    "gateway_config_reloads_total": ("counter", "Config reloads by result."),
    "gateway_access_log_dropped_total": (
        "counter",
        "Access log lines dropped because the log sink was too slow.",
    ),
    "gateway_workers": ("gauge", "Worker processes reporting metrics."),
    "gateway_info": ("info", "The gateway's version."),
}
# How a gauge of several workers adds up.
GAUGE_MERGE: dict[str, Callable[[Iterable[float]], float]] = {
    "gateway_requests_in_flight": sum,
    "gateway_upstream_target_in_flight": sum,
    "gateway_upstream_target_up": min,
}


def label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs: str) -> str:
    return ",".join(f'{name}="{label_value(value)}"' for name, value in pairs.items())


def _per_status_class() -> list[int]:
    return [0] * 10


class RouteStats:
    """The counters of one route (or of `unmatched`) in this worker; kept across reloads."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "consumers",
        "duration",
        "duration_sum",
        "ejections",
        "errors",
        "in_flight",
        "label",
        "rejections",
        "requests",
        "retries",
        "route",
        "upstream",
        "upstream_sum",
    )

    def __init__(self, route: str) -> None:
        self.route = route
        self.label = labels(route=route)
        # (status << 4 | method index << 1 | answered by the upstream) -> count: one int key,
        # no tuple built per request. The per-request counters are defaultdicts: one `+= 1`
        # in C, no get-then-set.
        self.requests: defaultdict[int, int] = defaultdict(int)
        self.duration = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; last: +Inf
        self.duration_sum = 0.0
        self.upstream = [0] * (len(BUCKETS) + 1)
        self.upstream_sum = 0.0
        self.in_flight = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.retries = 0
        self.errors: dict[str, int] = {}  # upstream error kind -> count
        self.rejections: defaultdict[str, int] = defaultdict(int)  # reason -> count
        # consumer -> count per status class (index: status // 100)
        self.consumers: defaultdict[str, list[int]] = defaultdict(_per_status_class)
        self.ejections: dict[str, int] = {}  # target -> count

    def totals(self) -> list[int]:
        """[requests, 5xx answers, rejections, duration bucket counts...] for the history."""
        errors = sum(n for key, n in self.requests.items() if key >> 4 >= 500)
        return [sum(self.duration), errors, sum(self.rejections.values()), *self.duration]


class Metrics:
    """Every counter of this worker. Routes added by a reload get new stats; the stats of a
    route a reload removed stay, so no counter ever goes down."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.routes: dict[str, RouteStats] = {}
        self.unmatched = self.route(UNMATCHED)
        self.reloads = {"success": 0, "failure": 0}
        self.access_log_dropped: Callable[[], int] = lambda: 0
        self.pools: Callable[[], Iterable[UpstreamPool]] = tuple
        self.started = time.time()
        self.pid = os.getpid()
        self._window = 0
        self._window_base: dict[str, list[int]] = {}
        self._last: dict[str, list[int]] = {}
        self.windows: dict[int, dict[str, list[int]]] = {}
        # Routes that counted something since the last tick: the only ones it visits.
        self.touched: set[RouteStats] = set()
        self.extra_gauges: dict[str, tuple[str, str, Callable[[], dict[str, float]]]] = {}

    def add_gauge(
        self,
        name: str,
        text: str,
        source: Callable[[], dict[str, float]],
        merge: str = "sum",
    ) -> None:
        """A gauge of another part (e.g. the rate limiter's store): `source` returns
        {label set: value} at each snapshot, label sets written with `labels()`; workers'
        values are merged by `merge` (sum, min or max)."""
        assert merge in _MERGES and name not in FAMILIES
        self.extra_gauges[name] = (text, merge, source)

    def route(self, prefix: str) -> RouteStats:
        stats = self.routes.get(prefix)
        if stats is None:
            stats = self.routes[prefix] = RouteStats(prefix)
        return stats

    def tick(self, now: float) -> None:
        """Bring the recent history (per-window counts) up to `now`; once a second.

        Only the routes that counted a request since the last tick are visited, so a config
        of a thousand routes costs what its busy ones cost; a route without a row in a window
        had no traffic in it.
        """
        window = int(now // WINDOW) * WINDOW
        last = self._last
        if window != self._window:
            self._window = window
            self._window_base = dict(last)
            for old in [w for w in self.windows if w <= window - WINDOW * HISTORY_WINDOWS]:
                del self.windows[old]
        rows = self.windows.setdefault(window, {})
        base = self._window_base
        for stats in self.touched:
            row = last[stats.route] = stats.totals()
            before = base.get(stats.route)
            rows[stats.route] = (
                row if before is None else [c - b for c, b in zip(row, before, strict=True)]
            )
        self.touched.clear()

    def snapshot(self) -> Snapshot:
        """This worker's counters and gauges, in the form the workers' snapshots merge in."""
        counters: dict[str, dict[str, float]] = {name: {} for name, _ in _COUNTERS}
        histograms: dict[str, dict[str, list[float]]] = {
            "gateway_request_duration_seconds": {},
            "gateway_upstream_duration_seconds": {},
        }
        gauges: dict[str, dict[str, float]] = {
            "gateway_requests_in_flight": {},
            "gateway_upstream_target_up": {},
            "gateway_upstream_target_in_flight": {},
        }
        requests = counters["gateway_requests_total"]
        for stats in self.routes.values():
            route = stats.label
            for packed, n in stats.requests.items():
                status, method = packed >> 4, METHODS[(packed >> 1) & 7]
                source = "upstream" if packed & 1 else "gateway"
                requests[f'{route},method="{method}",code="{status}",source="{source}"'] = n
            for consumer, row in stats.consumers.items():
                for cls, n in enumerate(row):
                    if n:
                        series = f'{route},consumer="{label_value(consumer)}",code_class="{cls}xx"'
                        counters["gateway_consumer_requests_total"][series] = n
            if stats.bytes_in or stats.bytes_out:
                counters["gateway_bytes_total"][f'{route},direction="in"'] = stats.bytes_in
                counters["gateway_bytes_total"][f'{route},direction="out"'] = stats.bytes_out
            for kind, n in stats.errors.items():
                counters["gateway_upstream_errors_total"][f'{route},kind="{kind}"'] = n
            if stats.retries:
                counters["gateway_upstream_retries_total"][route] = stats.retries
            for base, n in stats.ejections.items():
                series = f'{route},target="{label_value(base)}"'
                counters["gateway_upstream_ejections_total"][series] = n
            for reason, n in stats.rejections.items():
                counters["gateway_rejections_total"][f'{route},reason="{reason}"'] = n
            if any(stats.duration):
                histograms["gateway_request_duration_seconds"][route] = [
                    *stats.duration,
                    stats.duration_sum,
                ]
            if any(stats.upstream):
                histograms["gateway_upstream_duration_seconds"][route] = [
                    *stats.upstream,
                    stats.upstream_sum,
                ]
            if stats.route != UNMATCHED:
                gauges["gateway_requests_in_flight"][route] = stats.in_flight
        for pool in self.pools():
            route = self.route(pool.route.prefix).label
            for target in pool.targets:
                series = f'{route},target="{label_value(target.base)}"'
                gauges["gateway_upstream_target_up"][series] = 1 if target.available else 0
                gauges["gateway_upstream_target_in_flight"][series] = target.in_flight
        for name, (_, _, read) in self.extra_gauges.items():
            gauges[name] = dict(read())
        for result, n in self.reloads.items():
            counters["gateway_config_reloads_total"][f'result="{result}"'] = n
        counters["gateway_access_log_dropped_total"][""] = self.access_log_dropped()
        return {
            "counters": counters,
            "histograms": histograms,
            "gauges": gauges,
            "windows": {str(w): rows for w, rows in self.windows.items()},
            "families": {name: [text, how] for name, (text, how, _) in self.extra_gauges.items()},
            "worker": {
                "pid": self.pid,
                "started": self.started,
                "in_flight": sum(s.in_flight for s in self.routes.values()),
                "requests": sum(sum(s.duration) for s in self.routes.values()),
            },
        }


_COUNTERS = [(name, kind) for name, (kind, _) in FAMILIES.items() if kind == "counter"]
_MERGES: dict[str, Callable[[Iterable[float]], float]] = {"sum": sum, "min": min, "max": max}


def gauge_merge(family: str, extra: dict[str, list[str]]) -> Callable[[Iterable[float]], float]:
    """How the values of several workers add up for a gauge family."""
    if family in extra:
        return _MERGES[extra[family][1]]
    return GAUGE_MERGE.get(family, sum)


def _number(value: float) -> str:
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(value)


def _with(label_set: str, extra: str) -> str:
    return f"{{{label_set},{extra}}}" if label_set else f"{{{extra}}}"


def render(merged: Snapshot, *, openmetrics: bool = False) -> bytes:
    """The merged snapshot as Prometheus text (0.0.4) or, when asked for, OpenMetrics 1.0."""
    out: list[str] = []
    sections = {
        "counter": merged.get("counters", {}),
        "gauge": merged.get("gauges", {}),
        "histogram": merged.get("histograms", {}),
    }
    for name, (kind, text) in FAMILIES.items():
        family = name.removesuffix("_total") if openmetrics and kind == "counter" else name
        if kind == "info":
            family = name.removesuffix("_info") if openmetrics else name
            out.append(f"# HELP {family} {text}")
            out.append(f"# TYPE {family} {'info' if openmetrics else 'gauge'}")
            out.append(f'{name}{{version="{label_value(__version__)}"}} 1')
            continue
        if name == "gateway_workers":
            out.append(f"# HELP {name} {text}")
            out.append(f"# TYPE {name} gauge")
            out.append(f"{name} {merged.get('workers', 1)}")
            continue
        series = sections[kind].get(name, {})
        out.append(f"# HELP {family} {text}")
        out.append(f"# TYPE {family} {kind}")
        for label_set in sorted(series):
            value = series[label_set]
            if kind == "histogram":
                cumulative = 0
                for bound, count in zip((*BUCKETS, None), value[:-1], strict=True):
                    cumulative += int(count)
                    le = 'le="+Inf"' if bound is None else f'le="{bound!r}"'
                    out.append(f"{name}_bucket{_with(label_set, le)} {cumulative}")
                braces = f"{{{label_set}}}" if label_set else ""
                out.append(f"{name}_sum{braces} {_number(value[-1])}")
                out.append(f"{name}_count{braces} {cumulative}")
            else:
                braces = f"{{{label_set}}}" if label_set else ""
                out.append(f"{name}{braces} {_number(value)}")
    for name, (text, _) in sorted(merged.get("families", {}).items()):
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} gauge")
        series = merged.get("gauges", {}).get(name, {})
        for label_set in sorted(series):
            braces = f"{{{label_set}}}" if label_set else ""
            out.append(f"{name}{braces} {_number(series[label_set])}")
    if openmetrics:
        out.append("# EOF")
    return ("\n".join(out) + "\n").encode()
