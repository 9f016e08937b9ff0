"""Merging backend OpenAPI documents: owned paths only, no servers, unique names, valid result."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openapi_spec_validator import validate

from apigw.openapi.merge import Part, check_document, merge_documents
from apigw.openapi.swagger import gateway_components, problem_components
from apigw.routing import RouteTable

ROUTES = RouteTable({p: p for p in ("/users", "/users/admin", "/orders")})


def op(operation_id: str, schema: str, **extra: Any) -> dict[str, Any]:
    content = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return {
        "operationId": operation_id,
        "responses": {"200": {"description": "ok", "content": content}},
        **extra,
    }


def document(paths: dict[str, Any], schemas: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "backend", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas},
        **extra,
    }


def as_spec(merged: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "gateway", "version": "1"},
        "paths": merged.paths,
        "components": merged.components,
        "security": [{"ApiKeyAuth": []}],
    }


def test_a_route_keeps_only_the_paths_the_gateway_sends_it() -> None:
    users = document(
        {
            p: {"get": op(f"op{i}", "Thing")}
            for i, p in enumerate(
                ["/users", "/users/{id}", "/users/admin/x", "/usersx", "/orders/1", "/healthz"]
            )
        },
        {"Thing": {"type": "object"}},
    )
    merged = merge_documents({}, [Part("/users", users)], ROUTES)
    assert list(merged.paths) == ["/users", "/users/{id}"]


def test_servers_and_backend_security_are_dropped() -> None:
    users = document(
        {
            "/users": {
                "servers": [{"url": "http://10.0.0.1:8001"}],
                "get": op(
                    "list",
                    "Thing",
                    servers=[{"url": "http://backend"}],
                    security=[{"Internal": []}],
                ),
            }
        },
        {"Thing": {"type": "object"}},
        servers=[{"url": "http://127.0.0.1:8001"}],
        security=[{"Internal": []}],
    )
    users["components"]["securitySchemes"] = {
        "Internal": {"type": "apiKey", "in": "header", "name": "x-gateway-secret"}
    }
    merged = merge_documents(gateway_components(), [Part("/users", users)], ROUTES)
    item = merged.paths["/users"]
    assert "servers" not in item
    assert "servers" not in item["get"]
    assert "security" not in item["get"]
    assert list(merged.components["securitySchemes"]) == ["ApiKeyAuth"]
    assert "x-gateway-secret" not in repr(merged)
    validate(as_spec(merged))


def test_clashing_schema_names_are_renamed_and_every_ref_follows() -> None:
    users = document(
        {"/users": {"get": op("list_users", "Page")}},
        {
            "Page": {
                "type": "object",
                "properties": {"items": {"$ref": "#/components/schemas/Item"}},
            },
            "Item": {"type": "string"},
        },
    )
    orders = document(
        {"/orders": {"get": op("list_orders", "Page")}},
        {
            # Same text as the users' Page, but its Item differs: so it must differ too.
            "Page": {
                "type": "object",
                "properties": {"items": {"$ref": "#/components/schemas/Item"}},
            },
            "Item": {"type": "integer"},
            "Pet": {
                "oneOf": [{"$ref": "#/components/schemas/Item"}],
                "discriminator": {
                    "propertyName": "kind",
                    "mapping": {"item": "#/components/schemas/Item"},
                },
            },
        },
    )
    parts = [Part("/users", users), Part("/orders", orders)]
    merged = merge_documents(gateway_components(), parts, ROUTES)
    schemas = merged.components["schemas"]
    assert set(schemas) == {"Problem", "Page", "Item", "orders_Page", "orders_Item", "Pet"}
    assert schemas["Item"] == {"type": "string"}
    assert schemas["orders_Item"] == {"type": "integer"}
    assert schemas["orders_Page"]["properties"]["items"] == {
        "$ref": "#/components/schemas/orders_Item"
    }
    assert schemas["Pet"]["oneOf"] == [{"$ref": "#/components/schemas/orders_Item"}]
    assert schemas["Pet"]["discriminator"]["mapping"] == {
        "item": "#/components/schemas/orders_Item"
    }
    response = merged.paths["/orders"]["get"]["responses"]["200"]
    assert response["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/orders_Page"
    }
    validate(as_spec(merged))


def test_identical_components_are_shared_not_duplicated() -> None:
    shared = problem_components()
    users = document({"/users": {"get": op("a", "Problem")}}, shared["schemas"])
    orders = document({"/orders": {"get": op("b", "Problem")}}, shared["schemas"])
    merged = merge_documents(
        gateway_components(), [Part("/users", users), Part("/orders", orders)], ROUTES
    )
    assert list(merged.components["schemas"]) == ["Problem"]


def test_a_renamed_name_never_takes_one_already_in_use() -> None:
    users = document({"/users": {"get": op("a", "Page")}}, {"Page": {"type": "string"}})
    orders = document(
        {"/orders": {"get": op("b", "Page")}},
        {"Page": {"type": "integer"}, "orders_Page": {"type": "boolean"}},
    )
    merged = merge_documents({}, [Part("/users", users), Part("/orders", orders)], ROUTES)
    schemas = merged.components["schemas"]
    assert schemas["orders_Page"] == {"type": "boolean"}
    assert schemas["orders_Page_2"] == {"type": "integer"}


def test_clashing_operation_ids_are_made_unique() -> None:
    users = document({"/users": {"get": op("list", "T")}}, {"T": {"type": "string"}})
    orders = document({"/orders": {"get": op("list", "T")}}, {"T": {"type": "string"}})
    merged = merge_documents({}, [Part("/users", users), Part("/orders", orders)], ROUTES)
    assert merged.paths["/users"]["get"]["operationId"] == "list"
    assert merged.paths["/orders"]["get"]["operationId"] == "orders_list"


def test_gateway_answers_are_added_without_overriding_the_backends() -> None:
    get = op("get", "T")
    get["responses"]["504"] = {"description": "the backend's own 504"}
    users = document({"/users": {"get": get}}, {"T": {"type": "string"}})
    merged = merge_documents(gateway_components(), [Part("/users", users)], ROUTES)
    responses = merged.paths["/users"]["get"]["responses"]
    assert responses["401"] == {"$ref": "#/components/responses/KeyRequired"}
    assert responses["502"] == {"$ref": "#/components/responses/BackendUnreachable"}
    assert responses["504"] == {"description": "the backend's own 504"}


def test_merging_leaves_the_inputs_untouched() -> None:
    users = document({"/users": {"get": op("a", "T"), "servers": []}}, {"T": {"type": "string"}})
    base = gateway_components()
    before = copy.deepcopy((users, base))
    merge_documents(base, [Part("/users", users)], ROUTES)
    assert (users, base) == before


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ([], "not a JSON object"),
        ({"openapi": "3.1.0", "paths": {}}, "not 3.0.x"),
        ({"swagger": "2.0", "paths": {}}, "not 3.0.x"),
        ({"openapi": "3.0.3"}, "paths"),
        ({"openapi": "3.0.3", "paths": {"/x": []}}, "paths"),
        ({"openapi": "3.0.3", "paths": {}, "components": {"schemas": []}}, "components"),
        ({"openapi": "3.0.3", "paths": {}, "tags": {}}, "tags"),
    ],
    ids=["array", "3.1", "swagger-2", "no-paths", "bad-path-item", "bad-components", "bad-tags"],
)
def test_documents_the_merge_cannot_use_are_refused(doc: Any, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_document(doc)
