"""The users service: answers only the gateway (x-gateway-secret), on port 8001 by default.

Run: python users_service.py [--host H] [--port P]
"""

from __future__ import annotations

import sys

from aiohttp import web

from apigw.cli import fail, make_parser, serve, setup_logging
from apigw.config import ConfigError, ServiceSettings, load_service_settings
from apigw.errors import GatewayError
from apigw.service import int_id, make_service_app

SAMPLE_USERS = {
    1: "Ada Lovelace",
    2: "Alan Turing",
    3: "Grace Hopper",
}


async def get_user(request: web.Request) -> web.Response:
    user_id = int_id(request, "user_id")
    name = SAMPLE_USERS.get(user_id)
    if name is None:
        raise GatewayError(404, f"No user with id {user_id}.")
    return web.json_response({"user_id": user_id, "name": name})


async def create_app(settings: ServiceSettings | None = None) -> web.Application:
    app = make_service_app(settings or load_service_settings())
    app.router.add_get("/users/{user_id}", get_user)
    return app


def main(argv: list[str] | None = None) -> int:
    args = make_parser("users_service.py", "Run the users service.", 8001).parse_args(argv)
    setup_logging()
    try:
        settings = load_service_settings()
    except ConfigError as exc:
        return fail("users_service", f"config error: {exc}")
    serve(lambda: create_app(settings), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
