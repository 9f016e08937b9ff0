"""The admin surface: /metrics, /status (a page) and /status.json, for `admin.allow` clients only.

It sits outside routing and key auth: a client in `admin.allow` (default: loopback) needs no
key; anyone else gets exactly what an unknown path gets (the key check, then the proxy's 404),
so the surface cannot be told apart from nothing. The client address is the TCP peer, never a
forwarded header. Nothing here shows a key, a key digest or the gateway secret.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path
from typing import Any

from aiohttp import hdrs, web

from apigw import __version__
from apigw.observability.metrics import BUCKETS, UNMATCHED, WINDOW, render
from apigw.shared.appkeys import EXCHANGE_KEY, OBSERVER_KEY, PROXY_KEY
from apigw.shared.reserved import METRICS_PATH, STATUS_JSON_PATH, STATUS_PATH

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TEXT = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# The page loads nothing from anywhere: its script and style are inline, it fetches only
# /status.json from the gateway itself.
_PAGE_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
)
_NO_STORE = "no-store"


def admin_allowed(request: web.Request) -> bool:
    """The TCP peer is in `admin.allow` (read from the live config, so a reload applies)."""
    remote = request.remote
    if not remote:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    allow = request.app[PROXY_KEY].state.settings.admin.allow
    return any(address in network for network in allow)


async def _not_here(request: web.Request) -> web.StreamResponse:
    # What the same request to a path the gateway does not serve would get.
    return await request.app[PROXY_KEY].handle(request)


def _admin_get(request: web.Request) -> bool:
    if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD) or not admin_allowed(request):
        return False
    request[EXCHANGE_KEY].internal = True
    return True


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    if not _admin_get(request):
        return await _not_here(request)
    merged = await request.app[OBSERVER_KEY].collect()
    openmetrics = "application/openmetrics-text" in request.headers.get(hdrs.ACCEPT, "")
    return web.Response(
        body=render(merged, openmetrics=openmetrics),
        headers={
            hdrs.CONTENT_TYPE: OPENMETRICS_TEXT if openmetrics else PROMETHEUS_TEXT,
            hdrs.CACHE_CONTROL: _NO_STORE,
        },
    )


async def status_json_handler(request: web.Request) -> web.StreamResponse:
    if not _admin_get(request):
        return await _not_here(request)
    document = status_document(request.app, await request.app[OBSERVER_KEY].collect())
    response = web.json_response(document)
    response.headers[hdrs.CACHE_CONTROL] = _NO_STORE
    return response


async def status_page_handler(request: web.Request) -> web.StreamResponse:
    if not _admin_get(request):
        return await _not_here(request)
    return web.Response(
        body=_page(),
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": _PAGE_POLICY,
            hdrs.CACHE_CONTROL: _NO_STORE,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


_PAGE: list[bytes] = []


def _page() -> bytes:
    if not _PAGE:
        _PAGE.append(Path(__file__).with_name("status.html").read_bytes())
    return _PAGE[0]


def quantile(q: float, buckets: list[float]) -> float | None:
    """Like PromQL's histogram_quantile over per-bucket counts: linear within the bucket."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank = q * total
    seen = 0.0
    lower = 0.0
    for i, count in enumerate(buckets):
        upper = BUCKETS[i] if i < len(BUCKETS) else BUCKETS[-1]
        if count and seen + count >= rank:
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper
    return BUCKETS[-1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def status_document(app: web.Application, merged: dict[str, Any]) -> dict[str, Any]:
    """What /status.json says and /status shows: routes and targets, recent traffic, workers."""
    observer = app[OBSERVER_KEY]
    state = app[PROXY_KEY].state
    counters = merged["counters"]
    gauges = merged["gauges"]
    up = gauges.get("gateway_upstream_target_up", {})
    target_in_flight = gauges.get("gateway_upstream_target_in_flight", {})
    in_flight = gauges.get("gateway_requests_in_flight", {})
    routes_now = [pool.route.prefix for pool in state.pools]
    stats_of = observer.metrics.routes
    windows = merged.get("windows", {})
    newest = int(time.time() // WINDOW) * WINDOW
    recent = [newest - WINDOW * i for i in range(59, -1, -1)]

    def history(prefix: str) -> list[dict[str, Any]]:
        points: list[dict[str, Any]] = []
        for start in recent:
            row = windows.get(str(start), {}).get(prefix)
            if row is None:
                points.append({"t": start, "requests": 0, "errors": 0, "rejections": 0})
                continue
            requests, errors, rejections, *buckets = row
            # The window under way is not over: its rate is over the time it has run.
            span = min(WINDOW, max(time.time() - start, 1.0))
            points.append(
                {
                    "t": start,
                    "requests": requests,
                    "rps": round(requests / span, 2),
                    "errors": errors,
                    "rejections": rejections,
                    "p50_ms": _ms(quantile(0.5, buckets)),
                    "p95_ms": _ms(quantile(0.95, buckets)),
                }
            )
        return points

    def route_entry(prefix: str, pool_targets: tuple[str, ...]) -> dict[str, Any]:
        label = stats_of[prefix].label if prefix in stats_of else f'route="{prefix}"'
        total = sum(
            v
            for k, v in counters.get("gateway_requests_total", {}).items()
            if k.startswith(label + ",")
        )
        rejections = {
            k.rsplit('reason="', 1)[1].rstrip('"'): v
            for k, v in counters.get("gateway_rejections_total", {}).items()
            if k.startswith(label + ",")
        }
        targets = []
        for base in pool_targets:
            key = f'{label},target="{base}"'
            targets.append(
                {
                    "url": base,
                    "up": bool(up.get(key, 1)),
                    "in_flight": int(target_in_flight.get(key, 0)),
                    "ejections": int(
                        counters.get("gateway_upstream_ejections_total", {}).get(key, 0)
                    ),
                }
            )
        return {
            "route": prefix,
            "targets": targets,
            "in_flight": int(in_flight.get(label, 0)),
            "requests": int(total),
            "rejections": rejections,
            "history": history(prefix),
        }

    routes = [
        route_entry(pool.route.prefix, tuple(t.base for t in pool.targets)) for pool in state.pools
    ]
    routes.append(route_entry(UNMATCHED, ()))
    rejections: dict[str, int] = {}
    for key, value in counters.get("gateway_rejections_total", {}).items():
        reason = key.rsplit('reason="', 1)[1].rstrip('"')
        rejections[reason] = rejections.get(reason, 0) + int(value)
    dropped = counters.get("gateway_access_log_dropped_total", {}).get("", 0)
    now = time.time()
    return {
        "version": __version__,
        "now": now,
        "started_at": observer.started,
        "uptime_s": round(now - observer.started, 1),
        "workers": merged.get("worker_list", []),
        "config": {
            "generation": merged.get("generation", observer.generation),
            "loaded_at": observer.loaded_at,
            "last_reload": merged.get("last_reload"),
            "routes": routes_now,
        },
        "routes": routes,
        "rejections": rejections,
        "access_log": {
            "enabled": observer.access_log is not None,
            "dropped": int(dropped),
        },
        "window_seconds": WINDOW,
    }


def setup_admin(app: web.Application) -> None:
    """Before the proxy's catch-all route, which would otherwise take these paths."""
    app.router.add_route("*", METRICS_PATH, metrics_handler)
    app.router.add_route("*", STATUS_PATH, status_page_handler)
    app.router.add_route("*", STATUS_JSON_PATH, status_json_handler)
