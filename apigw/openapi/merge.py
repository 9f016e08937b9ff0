"""Merging the backends' OpenAPI documents into the gateway's single document.

Pure functions over plain dicts: which paths a route owns, what is dropped (servers, the
backends' own security), component names made unique with every $ref rewritten, and the
answers the gateway itself may give added to each operation.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apigw.openapi.swagger import GATEWAY_RESPONSES
from apigw.routing import RouteTable

# Component sections that $refs point into. securitySchemes is not merged: how a backend
# trusts the gateway is not the client's business, and the gateway adds its own key scheme.
COMPONENT_SECTIONS = (
    "schemas",
    "responses",
    "parameters",
    "examples",
    "requestBodies",
    "headers",
    "links",
    "callbacks",
)
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_COMPONENTS_REF = "#/components/"
_NOT_NAME_CHARS = re.compile(r"[^A-Za-z0-9]+")

Renames = dict[tuple[str, str], str]


@dataclass(frozen=True, slots=True)
class Part:
    """One route's backend document, as fetched."""

    prefix: str
    document: Mapping[str, Any]


@dataclass(slots=True)
class Merged:
    paths: dict[str, Any] = field(default_factory=dict)
    components: dict[str, Any] = field(default_factory=dict)
    tags: list[dict[str, Any]] = field(default_factory=list)


def check_document(document: Any) -> None:
    """Raise ValueError unless `document` is an OpenAPI 3.0 document shaped as the merge needs."""
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3.0."):
        raise ValueError(f"openapi {version!r} is not 3.0.x")
    paths = document.get("paths")
    if not isinstance(paths, dict) or not all(isinstance(v, dict) for v in paths.values()):
        raise ValueError("paths is not an object of path items")
    components = document.get("components", {})
    if not isinstance(components, dict) or not all(
        isinstance(components.get(section, {}), dict) for section in COMPONENT_SECTIONS
    ):
        raise ValueError("components is not an object of objects")
    if not isinstance(document.get("tags", []), list):
        raise ValueError("tags is not a list")


def merge_documents(
    base_components: Mapping[str, Any], parts: Sequence[Part], routes: RouteTable[str]
) -> Merged:
    """Merge `parts` in order over the gateway's own components.

    A part keeps only the paths that `routes` sends to its prefix. A component whose name is
    taken by a different definition is renamed `<route>_<name>`; an identical one is shared.
    Earlier parts keep their names, so the result does not depend on which backend answered
    first.
    """
    merged = Merged(components=copy.deepcopy(dict(base_components)))
    operation_ids: set[str] = set()
    for part in parts:
        slug = _slug(part.prefix)
        incoming = {
            section: dict(part.document.get("components", {}).get(section, {}))
            for section in COMPONENT_SECTIONS
        }
        renames = _renames(incoming, merged.components, slug)
        for section, items in incoming.items():
            for name, value in items.items():
                target = merged.components.setdefault(section, {})
                target[renames.get((section, name), name)] = _rewrite(value, renames)
        for path, item in part.document.get("paths", {}).items():
            if routes.match(path) == part.prefix:
                merged.paths[path] = _path_item(_rewrite(item, renames), slug, operation_ids)
        _add_tags(merged.tags, part.document.get("tags", ()))
    return merged


def _slug(prefix: str) -> str:
    return _NOT_NAME_CHARS.sub("_", prefix).strip("_") or "root"


def _renames(
    incoming: Mapping[str, Mapping[str, Any]], existing: Mapping[str, Any], slug: str
) -> Renames:
    # Renaming one component changes every component that refers to it, which may then clash
    # in turn: repeat until nothing new clashes (the set only grows, so this ends).
    renames: Renames = {}
    changed = True
    while changed:
        changed = False
        for section, items in incoming.items():
            taken = existing.get(section, {})
            for name, value in items.items():
                if (section, name) in renames or name not in taken:
                    continue
                if _rewrite(value, renames) != taken[name]:
                    used = {*taken, *items, *renames.values()}
                    renames[(section, name)] = _unused_name(f"{slug}_{name}", used)
                    changed = True
    return renames


def _unused_name(candidate: str, used: Iterable[str]) -> str:
    used = set(used)
    name, n = candidate, 2
    while name in used:
        name, n = f"{candidate}_{n}", n + 1
    return name


def _renamed_ref(ref: str, renames: Renames) -> str:
    if not ref.startswith(_COMPONENTS_REF):
        return ref
    section, _, name = ref.removeprefix(_COMPONENTS_REF).partition("/")
    new = renames.get((section, name))
    return ref if new is None else f"{_COMPONENTS_REF}{section}/{new}"


def _rewrite(node: Any, renames: Renames) -> Any:
    """A deep copy of `node` with every component reference renamed."""
    if isinstance(node, list):
        return [_rewrite(item, renames) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref" and isinstance(value, str):
            out[key] = _renamed_ref(value, renames)
        elif key == "discriminator" and isinstance(value, dict):
            out[key] = _rewrite(value, renames)
            mapping = value.get("mapping")
            if isinstance(mapping, dict):
                out[key]["mapping"] = {
                    k: _renamed_ref(v, renames) if isinstance(v, str) else v
                    for k, v in mapping.items()
                }
        else:
            out[key] = _rewrite(value, renames)
    return out


def _path_item(item: dict[str, Any], slug: str, operation_ids: set[str]) -> dict[str, Any]:
    # Swagger UI sends "Try it out" to a document's servers: without them, to the gateway.
    item.pop("servers", None)
    for method in HTTP_METHODS:
        operation = item.get(method)
        if not isinstance(operation, dict):
            continue
        operation.pop("servers", None)
        # Every operation needs the client key: the document-wide `security` says so.
        operation.pop("security", None)
        operation_id = operation.get("operationId")
        # operationIds must be unique in the merged document, as names must be.
        if isinstance(operation_id, str):
            if operation_id in operation_ids:
                operation_id = _unused_name(f"{slug}_{operation_id}", operation_ids)
            operation["operationId"] = operation_id
            operation_ids.add(operation_id)
        responses = operation.setdefault("responses", {})
        for status, (name, _) in GATEWAY_RESPONSES.items():
            responses.setdefault(status, {"$ref": f"{_COMPONENTS_REF}responses/{name}"})
    return item


def _add_tags(tags: list[dict[str, Any]], incoming: Iterable[Any]) -> None:
    known = {tag.get("name") for tag in tags}
    for tag in incoming:
        if isinstance(tag, dict) and tag.get("name") not in known:
            tags.append(copy.deepcopy(tag))
            known.add(tag.get("name"))
