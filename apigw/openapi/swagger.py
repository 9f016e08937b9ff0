"""aiohttp-swagger3 set-up shared by the gateway and the services, and the gateway's own document.

The gateway's /docs page serves a live spec dict that `apigw.openapi.fetch` fills in place from the
backends' documents; the services serve theirs (behind the gateway secret) from a YAML file.
aiohttp-swagger3 (with attrs and fastjsonschema) is imported only when it is first needed: at
start-up by a service, at the first view of the page by the gateway, whose workers would
otherwise each carry ~2 MB for a page most of them never serve.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from apigw.shared.reserved import DOCS_PATH

if TYPE_CHECKING:
    from aiohttp_swagger3 import SwaggerFile, SwaggerUiSettings

API_KEY_SCHEME = "ApiKeyAuth"
# What the gateway itself may answer on any route, whatever a backend documents; the merge
# adds each to every operation that does not document that status already.
GATEWAY_RESPONSES = {
    "401": ("KeyRequired", "No valid API key in the x-api-key header"),
    "502": ("BackendUnreachable", "The backend could not be reached"),
    "504": ("BackendTimeout", "The backend did not answer in time"),
}
# Where aiohttp-swagger3 keeps Swagger UI's files, found without importing the package.
_SWAGGER_UI_DIR = "swagger_ui"


@functools.cache
def _ui_settings() -> SwaggerUiSettings:
    import attr
    from aiohttp_swagger3 import SwaggerUiSettings

    @attr.attrs(slots=True, frozen=True, eq=False, hash=False, auto_attribs=True, kw_only=True)
    class _UiSettings(SwaggerUiSettings):  # type: ignore[misc]
        # Keeps the key entered in Authorize across page reloads.
        persistAuthorization: bool = True

    settings: SwaggerUiSettings = _UiSettings(path=DOCS_PATH, validatorUrl=None)  # type: ignore[call-arg]
    return settings


def _no_meta_schema(*args: Any, **kwargs: Any) -> Callable[[Any], None]:
    return lambda spec: None


@contextmanager
def _without_meta_schema() -> Iterator[None]:
    # aiohttp-swagger3 compiles the OpenAPI meta-schema at construction (~45 MB RSS, 0.3 s per
    # process) only to check documents at start-up; the tests check every document with
    # openapi-spec-validator instead, which is stricter. Swapped by hand, not with
    # unittest.mock, whose import alone costs each process 1.2 MB.
    from aiohttp_swagger3 import swagger as swagger_module

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

    The routes are aiohttp-swagger3's (redirect, page, document, its bundled assets), set up
    here so that the package is imported at the first view of the page, not at start-up. No
    API route goes through aiohttp-swagger3: the proxy serves them, and its request validation
    would read (buffer) bodies.
    """
    spec: dict[str, Any] = {
        "openapi": "3.0.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": {},
        "components": gateway_components(),
        "security": [{API_KEY_SCHEME: []}],
    }

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(f"{DOCS_PATH}/")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=_swagger_ui_page(title), content_type="text/html")

    async def document(request: web.Request) -> web.Response:
        return web.json_response(spec)

    app.router.add_get(DOCS_PATH, redirect)
    app.router.add_get(f"{DOCS_PATH}/", page)
    app.router.add_get(f"{DOCS_PATH}/swagger.json", document)
    app.router.add_static(f"{DOCS_PATH}/{_SWAGGER_UI_DIR}_static", _package_dir() / _SWAGGER_UI_DIR)
    return spec


def _package_dir() -> Path:
    found = importlib.util.find_spec("aiohttp_swagger3")
    assert found is not None and found.submodule_search_locations, "aiohttp-swagger3 is missing"
    return Path(next(iter(found.submodule_search_locations)))


@functools.cache
def _swagger_ui_page(title: str) -> str:
    """The page aiohttp-swagger3 renders, taken from a throwaway app it is set up on."""
    from aiohttp_swagger3 import SwaggerDocs, SwaggerInfo
    from aiohttp_swagger3.routes import _SWAGGER_UI_INDEX_HTML

    throwaway = web.Application()
    with _without_meta_schema():
        SwaggerDocs(
            throwaway,
            validate=False,
            info=SwaggerInfo(title=title, version="1.0.0"),
            swagger_ui_settings=_ui_settings(),
        )
    html: str = throwaway[_SWAGGER_UI_INDEX_HTML]
    return html


def load_service_docs(app: web.Application, spec_file: Path) -> SwaggerFile:
    """A service's document, served at /docs/swagger.json and used to validate its requests."""
    from aiohttp_swagger3 import SwaggerFile

    with _without_meta_schema():
        return SwaggerFile(app, str(spec_file), validate=True, swagger_ui_settings=_ui_settings())
