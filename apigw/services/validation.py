"""Request validation in the services, driven by each service's OpenAPI document.

Every operation in the document is routed to the handler its operationId names, after
aiohttp-swagger3 has checked the request against it. A request that does not match gets a 400
problem+json that names each bad field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp_swagger3 import RequestValidationFailed
from aiohttp_swagger3.swagger_route import SwaggerRoute

from apigw.openapi.swagger import load_service_docs
from apigw.shared.errors import ProblemError

# aiohttp-swagger3 calls a handler with validated values by parameter name: `request`, `body`
# and each parameter of the operation (`user_id`, `limit` ...).
Operation = Callable[..., Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# Unknown properties are named in the answer; a body with thousands of them gets a short one.
MAX_REPORTED_ERRORS = 20
MAX_FIELD_LENGTH = 64
INVALID_REQUEST = "The request does not match the API description; see errors."
# aiohttp-swagger3 says "more than 1" for minLength 1, which an empty string fails; its bounds
# are inclusive, so say so.
_REWORDED = (
    ("value length should be more than ", "value length should be at least "),
    ("value length should be less than ", "value length should be at most "),
)


def setup_operations(
    app: web.Application, spec_file: Path, operations: Mapping[str, Operation]
) -> dict[str, Any]:
    """Route every operation of `spec_file` to `operations[operationId]`; return the document.

    A document and a handler table that disagree fail at start-up, not at the first request.
    """
    docs = load_service_docs(app, spec_file)
    spec: dict[str, Any] = docs.spec
    unused = dict(operations)
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation_id = item[method].get("operationId")
            handler = unused.pop(operation_id, None)
            if handler is None:
                raise ValueError(
                    f"{spec_file.name}: {method.upper()} {path}: "
                    f"no handler for operationId {operation_id!r} (missing or used twice)"
                )
            route = SwaggerRoute(method, path, handler, swagger=docs)
            app.router.add_route(method.upper(), path, _validated(route))
    if unused:
        raise ValueError(f"{spec_file.name}: no operation for {', '.join(sorted(unused))}")
    return spec


def _validated(route: Any) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            kwargs = await route.parse(request)
        except RequestValidationFailed as exc:
            raise validation_error(exc.errors) from None
        response: web.StreamResponse = await route.handler(**kwargs)
        return response

    return handle


def validation_error(errors: Mapping[Any, Any]) -> ProblemError:
    """A 400 whose `errors` lists each bad field (`body.email`, `limit` ...) and what is wrong."""
    listed = list(_flatten(errors, ""))
    extra: dict[str, object] = {"errors": listed[:MAX_REPORTED_ERRORS]}
    if len(listed) > MAX_REPORTED_ERRORS:
        extra["errors_omitted"] = len(listed) - MAX_REPORTED_ERRORS
    return ProblemError(400, INVALID_REQUEST, extra=extra)


def _flatten(errors: Mapping[Any, Any], prefix: str) -> Iterator[dict[str, str]]:
    # aiohttp-swagger3 nests a body's errors by property: {"body": {"email": "required property"}}.
    for key in sorted(errors, key=str):
        field = f"{prefix}{key}"[:MAX_FIELD_LENGTH]
        value = errors[key]
        if isinstance(value, Mapping):
            yield from _flatten(value, field + ".")
        else:
            yield {"field": field, "message": _reworded(str(value))}


def _reworded(message: str) -> str:
    for library, ours in _REWORDED:
        if message.startswith(library):
            return ours + message.removeprefix(library)
    return message
