"""Generic pieces the settings parsers share: the error type, field checks and `${VAR}` expansion.

Every problem is a `ConfigError` whose message is one line naming the field or variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BYTE_UNITS = {"": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}
_BYTE_SIZE = re.compile(r"([0-9]+)\s*([KMGkmg][iI][bB])?")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


class ConfigError(Exception):
    """A configuration problem, described in one line that names the field."""


def field_path(where: str, key: str) -> str:
    """`routes[0].retries` inside a route, plain `retries` at the top of the document."""
    return f"{where}.{key}" if where else key


def env_flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}: expected one of 1/0, true/false, yes/no, on/off, got {raw!r}")


def substitute_env(value: str, env: Mapping[str, str], where: str) -> str:
    """Expand `${VAR}` and `${VAR:-default}` in one scalar."""

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        got = env.get(name)
        if got:
            return got
        if default is not None:
            return default
        raise ConfigError(f"{where}: environment variable {name} is not set and has no default")

    return _ENV_REF.sub(expand, value)


def expand_tree(node: Any, env: Mapping[str, str], where: str) -> Any:
    # Substituting after parsing means an environment value can never inject YAML structure.
    if isinstance(node, str):
        return substitute_env(node, env, where)
    if isinstance(node, list):
        return [expand_tree(item, env, f"{where}[{i}]") for i, item in enumerate(node)]
    if isinstance(node, dict):
        return {
            k: expand_tree(v, env, f"{where}.{k}" if where else str(k)) for k, v in node.items()
        }
    return node


def mapping(node: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = sorted(str(k) for k in node if k not in allowed)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: unknown field (allowed: {', '.join(sorted(allowed))})"
        )
    return node


def number(node: Any, where: str, default: float, *, minimum: float = 0.001) -> float:
    if node is None:
        return default
    return _checked_number(node, where, minimum)


def optional_number(
    node: dict[str, Any], key: str, where: str, default: float | None
) -> float | None:
    """A number of seconds that `null` turns off; an absent key keeps the default."""
    if key not in node:
        return default
    if node[key] is None:
        return None
    return _checked_number(node[key], field_path(where, key), 0.001)


def _checked_number(node: Any, where: str, minimum: float) -> float:
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        try:
            node = float(str(node))
        except ValueError:
            raise ConfigError(f"{where}: expected a number of seconds, got {node!r}") from None
    if not node >= minimum:
        raise ConfigError(f"{where}: must be at least {minimum}, got {node!r}")
    return float(node)


def integer(
    node: Any, where: str, default: int, *, minimum: int = 1, maximum: int | None = None
) -> int:
    """An integer field; a digit string (from a `${VAR}` substitution) counts as one."""
    value = default if node is None else node
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise ConfigError(f"{where}: expected an integer {bounds}, got {value!r}")
    return value


def boolean(node: Any, where: str, default: bool) -> bool:
    """A true/false field; the words env_flag accepts (from a `${VAR}` substitution) count too."""
    if node is None:
        return default
    if isinstance(node, bool):
        return node
    if isinstance(node, str):
        word = node.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE - {""}:
            return False
    raise ConfigError(f"{where}: expected true or false, got {node!r}")


def byte_size(node: dict[str, Any], key: str, where: str, default: int | None) -> int | None:
    if key not in node:
        return default
    value = node[key]
    if value is None:
        return None
    if isinstance(value, str):
        match = _BYTE_SIZE.fullmatch(value.strip())
        if match is not None:
            return int(match.group(1)) * _BYTE_UNITS[(match.group(2) or "").lower()]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"{field_path(where, key)}: expected a byte count (integer >= 0, or e.g. '10 MiB')"
            " or null"
        )
    return value
