"""The status page's recent history: per-window counts, kept by visiting only busy routes."""

from __future__ import annotations

from apigw.observability.metrics import BUCKETS, WINDOW, Metrics, RouteStats
from tests.gateway.test_flat_cost import count_steps


def record(metrics: Metrics, stats: RouteStats, requests: int, status: int = 200) -> None:
    # What Observer.finish counts for each answered request.
    key = status << 4
    stats.requests[key] = stats.requests.get(key, 0) + requests
    stats.duration[0] += requests
    metrics.touched.add(stats)


def test_each_window_counts_what_happened_in_it() -> None:
    metrics = Metrics()
    users, orders = metrics.route("/users"), metrics.route("/orders")
    start = 1000 * WINDOW
    metrics.tick(start)
    record(metrics, users, 3)
    record(metrics, orders, 1, status=502)
    metrics.tick(start + 1)
    record(metrics, users, 2)
    metrics.tick(start + 2)
    empty = [0] * (len(BUCKETS) + 1)
    assert metrics.windows[start]["/users"] == [5, 0, 0, 5, *empty[1:]]
    assert metrics.windows[start]["/orders"] == [1, 1, 0, 1, *empty[1:]]
    # The next window counts from where the last one ended; a quiet route has no row there.
    record(metrics, users, 4)
    metrics.tick(start + WINDOW)
    metrics.tick(start + WINDOW + 1)
    assert metrics.windows[start + WINDOW] == {"/users": [4, 0, 0, 4, *empty[1:]]}
    assert metrics.windows[start]["/users"][0] == 5


def test_a_tick_visits_only_the_routes_with_traffic() -> None:
    def busy_metrics(routes: int) -> Metrics:
        metrics = Metrics()
        for n in range(routes):
            metrics.route(f"/r{n}")
        metrics.tick(0.0)
        record(metrics, metrics.route("/r1"), 1)
        return metrics

    small, large = busy_metrics(10), busy_metrics(10_000)
    assert count_steps(lambda: large.tick(1.0)) == count_steps(lambda: small.tick(1.0))
    assert large.windows[0] == small.windows[0]
