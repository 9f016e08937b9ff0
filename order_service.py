"""The orders service: answers only the gateway (x-gateway-secret), on port 8002 by default.

Run: python order_service.py [--host H] [--port P]
"""

from __future__ import annotations

import sys

from aiohttp import web

from apigw.cli import fail, make_parser, serve, setup_logging
from apigw.config import ConfigError, ServiceSettings, load_service_settings
from apigw.errors import GatewayError
from apigw.service import int_id, make_service_app

SAMPLE_ORDERS = {
    1: "Analytical engine",
    2: "Bombe",
    3: "Compiler manual",
}


async def get_order(request: web.Request) -> web.Response:
    order_id = int_id(request, "order_id")
    item = SAMPLE_ORDERS.get(order_id)
    if item is None:
        raise GatewayError(404, f"No order with id {order_id}.")
    return web.json_response({"order_id": order_id, "item": item})


async def create_app(settings: ServiceSettings | None = None) -> web.Application:
    app = make_service_app(settings or load_service_settings())
    app.router.add_get("/orders/{order_id}", get_order)
    return app


def main(argv: list[str] | None = None) -> int:
    args = make_parser("order_service.py", "Run the orders service.", 8002).parse_args(argv)
    setup_logging()
    try:
        settings = load_service_settings()
    except ConfigError as exc:
        return fail("order_service", f"config error: {exc}")
    serve(lambda: create_app(settings), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
