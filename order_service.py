"""The orders service: answers only the gateway (x-gateway-secret), on port 8002 by default.

Run: python order_service.py [--host H] [--port P]   (database: $ORDERS_DB, else data/orders.db)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from aiohttp import web

from apigw.config import ConfigError, ServerLimits, ServiceSettings, load_service_settings
from apigw.server import install_error_answers, server_args
from apigw.services.app import SERVICE_GRACE, make_service_app
from apigw.services.orders import DB_FILE, DB_VARIABLE, setup_orders
from apigw.services.storage import database_path
from apigw.shared.cli import fail, make_parser, serve, setup_logging
from apigw.shared.headers import DEFAULT_SERVER_HEADER
from apigw.shared.logs import install_redaction
from middleware import SERVICE_MIDDLEWARES

# The gateway's parser limits and parse-error answers (problem+json that never quotes the
# request, and redacted log lines) apply to the services too.
SERVICE_SERVER_ARGS = server_args(ServerLimits(), DEFAULT_SERVER_HEADER)


async def create_app(
    settings: ServiceSettings | None = None, db_path: Path | None = None
) -> web.Application:
    install_error_answers()
    app = make_service_app(
        settings or load_service_settings(), SERVICE_MIDDLEWARES, handler_args=SERVICE_SERVER_ARGS
    )
    setup_orders(app, db_path or database_path(os.environ, DB_VARIABLE, DB_FILE))
    return app


def main(argv: list[str] | None = None) -> int:
    args = make_parser("order_service.py", "Run the orders service.", 8002).parse_args(argv)
    setup_logging()
    try:
        settings = load_service_settings()
        db_path = database_path(os.environ, DB_VARIABLE, DB_FILE)
    except ConfigError as exc:
        return fail("order_service", f"config error: {exc}")
    install_redaction(settings.accepted_secrets)
    serve(lambda: create_app(settings, db_path), args.host, args.port, grace=SERVICE_GRACE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
