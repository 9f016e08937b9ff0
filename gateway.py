"""The API gateway: checks the client key, routes by path prefix, streams to the backend.

Run: python gateway.py [--config FILE] [--host H] [--port P] [--production]
Under gunicorn: gunicorn gateway:create_app --worker-class aiohttp.GunicornUVLoopWebWorker
"""

from __future__ import annotations

import os
import sys

from aiohttp import web

from apigw.config import ConfigError, GatewaySettings, load_gateway_settings
from apigw.health import setup_health
from apigw.keys import Keyring
from apigw.lifecycle import install_signal_handlers, setup_lifecycle
from apigw.observability.admin import setup_admin
from apigw.observability.exchange import setup_observability
from apigw.openapi.fetch import setup_backend_docs
from apigw.openapi.swagger import setup_docs
from apigw.proxy import defer_continue, setup_proxy
from apigw.ratelimit.limiter import setup_rate_limits
from apigw.request_gate import RequestGate
from apigw.server import install_error_answers, report_parser, server_args
from apigw.shared.appkeys import (
    KEYRING_KEY,
    OPEN_PATHS_KEY,
    OPEN_PREFIXES_KEY,
    REQUEST_GATE_KEY,
    SERVER_HEADER_KEY,
    SETTINGS_KEY,
)
from apigw.shared.cli import fail, make_parser, serve, setup_logging
from apigw.shared.logs import install_redaction
from apigw.shared.reserved import DOCS_PATH, HEALTHZ_PATH, READYZ_PATH, healthz
from apigw.streaming.live_page import setup_live_page
from apigw.streaming.streams import setup_long_lived
from middleware import gateway_middleware


async def create_app(settings: GatewaySettings | None = None) -> web.Application:
    """The gateway application; with no settings, the config is loaded as `main()` would."""
    if settings is None:
        settings = load_gateway_settings()
    # aiohttp has no hook for its parse-error answers; this routes them through ServerLog.
    install_error_answers()
    # handler_args reach aiohttp's server whichever way it is started (run_app or gunicorn),
    # and take precedence over gunicorn's keepalive setting.
    handler_args = server_args(settings.limits, settings.server_header)
    app = web.Application(handler_args=handler_args)
    app[SETTINGS_KEY] = settings
    app[SERVER_HEADER_KEY] = settings.server_header
    app[REQUEST_GATE_KEY] = RequestGate(settings.limits)
    app.on_startup.append(report_parser)
    app[KEYRING_KEY] = Keyring(settings.consumers)
    app[OPEN_PATHS_KEY] = frozenset({HEALTHZ_PATH, READYZ_PATH, DOCS_PATH})
    app[OPEN_PREFIXES_KEY] = (DOCS_PATH + "/",)
    app.router.add_get(HEALTHZ_PATH, healthz)
    spec = setup_docs(app, "API gateway")
    setup_live_page(app)
    observer = setup_observability(app, settings)
    # What aiohttp's parser refuses never reaches a middleware: counted where it is answered.
    handler_args["logger"].on_answer = observer.parser_answered
    proxy = setup_proxy(app, setup_rate_limits(app))
    setup_backend_docs(app, spec)
    setup_health(app)
    setup_lifecycle(app, settings.shutdown)
    setup_long_lived(app, settings.shutdown, settings.limits)
    setup_admin(app)
    # [\s\S]: the decoded path may hold a newline, which must reach the proxy's check.
    app.router.add_route("*", r"/{tail:[\s\S]*}", proxy.handle, expect_handler=defer_continue)
    app.middlewares.append(gateway_middleware(app))
    return app


def main(argv: list[str] | None = None) -> int:
    parser = make_parser("gateway.py", "Run the API gateway.", 8000)
    parser.add_argument(
        "--config", help="YAML config (default: $GATEWAY_CONFIG, else gateway.yaml)"
    )
    parser.add_argument(
        "--production",
        action="store_true",
        help="refuse to start with the demo key or demo secret (also GATEWAY_PRODUCTION=1)",
    )
    args = parser.parse_args(argv)
    setup_logging()
    try:
        settings = load_gateway_settings(args.config, os.environ, production=args.production)
    except ConfigError as exc:
        return fail("gateway", f"config error: {exc}")
    install_redaction([settings.gateway_secret])
    serve(
        lambda: create_app(settings),
        args.host,
        args.port,
        grace=settings.shutdown.grace,
        install_signals=install_signal_handlers,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
