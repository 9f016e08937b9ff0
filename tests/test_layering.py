"""The package's parts import each other one way only, checked on the source (an AST walk).

shared and config never import the gateway or the services; the services never import the
gateway; nothing under apigw imports a top-level script; appkeys imports nothing of apigw at
run time (its TYPE_CHECKING imports only name types).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "apigw"
SCRIPTS = {p.stem for p in ROOT.glob("*.py")}  # gateway, middleware, users_service, ...
# Parts both products may use; openapi.swagger serves the services' /docs too.
SHARED = ("apigw.shared", "apigw.config", "apigw.openapi.swagger")
SERVICES = ("apigw.services",)


def _in(module: str, parts: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules imported outside `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test).endswith("TYPE_CHECKING"):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.add(child.module)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return out


def _wrong_way(module: str, imported: str) -> str | None:
    if imported.split(".")[0] in SCRIPTS:
        return "imports a top-level script"
    if not imported.startswith("apigw"):
        return None
    if module == "apigw.shared.appkeys":
        return "appkeys imports apigw at run time"
    if _in(module, SHARED) and not _in(imported, SHARED) and imported != "apigw":
        return "a shared module imports the gateway or the services"
    if _in(module, SERVICES) and not _in(imported, SHARED + SERVICES):
        return "a service module imports the gateway"
    if not _in(module, SHARED + SERVICES) and _in(imported, SERVICES):
        return "the gateway imports a service module"
    return None


def test_the_layering_rules_catch_each_kind_of_wrong_way_import() -> None:
    assert _wrong_way("apigw.shared.errors", "apigw.proxy")
    assert _wrong_way("apigw.config.routes", "apigw.routing")
    assert _wrong_way("apigw.services.users", "apigw.keys")
    assert _wrong_way("apigw.proxy", "apigw.services.storage")
    assert _wrong_way("apigw.services.app", "middleware")
    assert _wrong_way("apigw.shared.appkeys", "apigw.config")
    assert _wrong_way("apigw.proxy", "apigw.shared.errors") is None
    assert _wrong_way("apigw.services.users", "apigw.openapi.swagger") is None


@pytest.mark.parametrize(("module", "path"), _modules(), ids=[m for m, _ in _modules()])
def test_no_module_imports_the_wrong_way(module: str, path: Path) -> None:
    problems = [
        f"{module} -> {imported}: {why}"
        for imported in sorted(_runtime_imports(path))
        if (why := _wrong_way(module, imported)) is not None
    ]
    assert problems == []
