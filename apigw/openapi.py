"""The Swagger page at /docs: aiohttp-swagger3's bundled UI over the gateway's OpenAPI document.

No API route is registered through aiohttp-swagger3: the proxy serves them, and its request
validation would read (buffer) bodies. The document it serves is a plain dict, edited in place.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import attr
from aiohttp import web
from aiohttp_swagger3 import SwaggerDocs, SwaggerInfo, SwaggerUiSettings

DOCS_PATH = "/docs"
API_KEY_SCHEME = "ApiKeyAuth"


@attr.attrs(slots=True, frozen=True, eq=False, hash=False, auto_attribs=True, kw_only=True)
class _UiSettings(SwaggerUiSettings):  # type: ignore[misc]
    # Keeps the key entered in Authorize across page reloads.
    persistAuthorization: bool = True


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "request_id": {"type": "string"},
        },
    }


def _get_by_id(tag: str, param: str, example: dict[str, Any]) -> dict[str, Any]:
    problem = {"$ref": "#/components/responses/Problem"}
    return {
        "get": {
            "tags": [tag],
            "summary": f"Get one {tag[:-1]} by id",
            "parameters": [
                {
                    "name": param,
                    "in": "path",
                    "required": True,
                    # What the services accept (apigw.service.int_id): up to 18 digits, no sign.
                    "schema": {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 10**18 - 1,
                        "example": 1,
                    },
                }
            ],
            "responses": {
                "200": {
                    "description": "Found",
                    "content": {"application/json": {"example": example}},
                },
                "400": problem,
                "401": problem,
                "404": problem,
                "502": problem,
                "504": problem,
            },
        }
    }


def gateway_paths() -> dict[str, Any]:
    return {
        "/users/{user_id}": _get_by_id("users", "user_id", {"user_id": 1, "name": "Ada Lovelace"}),
        "/orders/{order_id}": _get_by_id(
            "orders", "order_id", {"order_id": 1, "item": "Analytical engine"}
        ),
    }


def setup_docs(app: web.Application, title: str, paths: dict[str, Any]) -> dict[str, Any]:
    """Serve Swagger UI at /docs and return the live document it shows."""
    # aiohttp-swagger3 compiles the OpenAPI meta-schema at construction (~50 MB RSS, 0.3 s)
    # only to validate routes registered through it; the gateway registers none, and its
    # document is validated by the tests instead.
    with mock.patch(
        "aiohttp_swagger3.swagger.fastjsonschema.compile", return_value=lambda spec: None
    ):
        docs = SwaggerDocs(
            app,
            validate=False,
            info=SwaggerInfo(title=title, version="1.0.0"),
            swagger_ui_settings=_UiSettings(path=DOCS_PATH, validatorUrl=None),  # type: ignore[call-arg]
        )
    spec: dict[str, Any] = docs.spec
    spec["paths"].update(paths)
    spec["components"] = {
        "securitySchemes": {
            API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "x-api-key"}
        },
        "schemas": {"Problem": _problem_schema()},
        "responses": {
            "Problem": {
                "description": "An error, as RFC 9457 problem details",
                "content": {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                },
            }
        },
    }
    spec["security"] = [{API_KEY_SCHEME: []}]
    return spec
