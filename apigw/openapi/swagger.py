"""aiohttp-swagger3 set-up shared by the gateway and the services, and the gateway's own document.

The gateway's /docs page serves a live spec dict that `apigw.openapi.fetch` fills in place from the
backends' documents; the services serve theirs (behind the gateway secret) from a YAML file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attr
from aiohttp import web
from aiohttp_swagger3 import SwaggerDocs, SwaggerFile, SwaggerInfo, SwaggerUiSettings
from aiohttp_swagger3 import swagger as swagger_module

from apigw.shared.reserved import DOCS_PATH

API_KEY_SCHEME = "ApiKeyAuth"
# What the gateway itself may answer on any route, whatever a backend documents; the merge
# adds each to every operation that does not document that status already.
GATEWAY_RESPONSES = {
    "401": ("KeyRequired", "No valid API key in the x-api-key header"),
    "502": ("BackendUnreachable", "The backend could not be reached"),
    "504": ("BackendTimeout", "The backend did not answer in time"),
}


@attr.attrs(slots=True, frozen=True, eq=False, hash=False, auto_attribs=True, kw_only=True)
class _UiSettings(SwaggerUiSettings):  # type: ignore[misc]
    # Keeps the key entered in Authorize across page reloads.
    persistAuthorization: bool = True


def _ui_settings() -> SwaggerUiSettings:
    return _UiSettings(path=DOCS_PATH, validatorUrl=None)  # type: ignore[call-arg]


def _no_meta_schema(*args: Any, **kwargs: Any) -> Callable[[Any], None]:
    return lambda spec: None


@contextmanager
def _without_meta_schema() -> Iterator[None]:
    # aiohttp-swagger3 compiles the OpenAPI meta-schema at construction (~45 MB RSS, 0.3 s per
    # process) only to check documents at start-up; the tests check every document with
    # openapi-spec-validator instead, which is stricter. Swapped by hand, not with
    # unittest.mock, whose import alone costs each process 1.2 MB.
    schema_compiler = swagger_module.fastjsonschema
    compile_schema = schema_compiler.compile
    schema_compiler.compile = _no_meta_schema
    try:
        yield
    finally:
        schema_compiler.compile = compile_schema


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def problem_components() -> dict[str, Any]:
    """The RFC 9457 error shape, documented identically by every app so the merge shares it."""
    return {
        "schemas": {
            "Problem": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "request_id": {"type": "string"},
                },
            }
        },
        "responses": {"Problem": _problem_response("An error, as RFC 9457 problem details")},
    }


def gateway_components() -> dict[str, Any]:
    """What the gateway's document holds before any backend's part is merged in."""
    components = problem_components()
    for name, description in GATEWAY_RESPONSES.values():
        components["responses"][name] = _problem_response(description)
    components["securitySchemes"] = {
        API_KEY_SCHEME: {"type": "apiKey", "in": "header", "name": "x-api-key"}
    }
    return components


def setup_docs(app: web.Application, title: str) -> dict[str, Any]:
    """Serve Swagger UI at /docs and return the live document it shows, with no paths yet.

    No API route is registered through aiohttp-swagger3: the proxy serves them, and its request
    validation would read (buffer) bodies.
    """
    with _without_meta_schema():
        docs = SwaggerDocs(
            app,
            validate=False,
            info=SwaggerInfo(title=title, version="1.0.0"),
            swagger_ui_settings=_ui_settings(),
        )
    spec: dict[str, Any] = docs.spec
    # A plain dict: aiohttp-swagger3's defaultdict would invent entries on lookup.
    spec["paths"] = {}
    spec["components"] = gateway_components()
    spec["security"] = [{API_KEY_SCHEME: []}]
    return spec


def load_service_docs(app: web.Application, spec_file: Path) -> SwaggerFile:
    """A service's document, served at /docs/swagger.json and used to validate its requests."""
    with _without_meta_schema():
        return SwaggerFile(app, str(spec_file), validate=True, swagger_ui_settings=_ui_settings())
