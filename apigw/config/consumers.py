"""Consumers: a name, one or more key digests (rotation), a plan and an optional route allow-list.

They come from `consumers:` in the YAML and from `consumers_file:` (JSON Lines, one consumer
object per line), which holds large sets: JSON parses 100,000 consumers in a fraction of the
time YAML needs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apigw.config.fields import ConfigError

# The demo key `secret002oUdaRJA`, kept working in the shipped config for the classic curl
# example; only its digest is stored anywhere.
DEMO_KEY_DIGEST = bytes.fromhex("fa07946b996ae455463ff22d78f25da36e98425b4aa1360f46c030f4ceb315c6")

_CONSUMER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CONSUMER_FIELDS = frozenset({"name", "key_sha256", "keys_sha256", "plan", "routes"})


@dataclass(frozen=True, slots=True)
class Consumer:
    """`routes`: the route prefixes it may call; None: every route."""

    name: str
    digests: tuple[bytes, ...] = field(repr=False)
    plan: str
    routes: frozenset[str] | None = None


def valid_consumer_name(name: str) -> bool:
    return _CONSUMER_NAME.fullmatch(name) is not None


def digest_of(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


class _Bad(Exception):
    """A consumer's field is wrong: (field, message); the caller says where the consumer is."""


def _digest(node: Any, field_name: str) -> bytes:
    if isinstance(node, str) and len(node) == 64:
        try:
            digest = bytes.fromhex(node)
        except ValueError:
            pass
        else:
            if len(digest) == 32:  # fromhex skips spaces: 64 characters are not 32 bytes
                return digest
    raise _Bad(field_name, "expected 64 hex digits (run `python -m apigw.keys NAME`)")


def _consumer(
    node: Any, plans: Mapping[str, object], default_plan: str, prefixes: frozenset[str]
) -> Consumer:
    """One consumer object, checked; the hot loop of a 100,000-line consumers_file, so error
    text is built only when something is wrong."""
    if type(node) is not dict:
        raise _Bad("", "expected a mapping with name and key_sha256")
    if not node.keys() <= CONSUMER_FIELDS:
        unknown = sorted(map(str, node.keys() - CONSUMER_FIELDS))[0]
        raise _Bad(unknown, f"unknown field (allowed: {', '.join(sorted(CONSUMER_FIELDS))})")
    name = node.get("name")
    if type(name) is not str or _CONSUMER_NAME.fullmatch(name) is None:
        raise _Bad("name", f"1-64 letters, digits, '.', '_' or '-', got {name!r}")
    one = node.get("key_sha256")
    if one is not None:
        if "keys_sha256" in node:
            raise _Bad("", "give exactly one of key_sha256 or keys_sha256")
        digests: tuple[bytes, ...] = (_digest(one, "key_sha256"),)
    else:
        many = node.get("keys_sha256")
        if many is None:
            raise _Bad("", "give exactly one of key_sha256 or keys_sha256")
        if type(many) is not list or not many:
            raise _Bad("keys_sha256", "expected a non-empty list of digests")
        digests = tuple(_digest(d, f"keys_sha256[{i}]") for i, d in enumerate(many))
    plan = node.get("plan", default_plan)
    if plan not in plans:
        raise _Bad("plan", f"no plan named {plan!r} under plans:")
    routes = node.get("routes")
    allowed = None
    if routes is not None:
        if type(routes) is not list:
            raise _Bad("routes", "expected a list of route prefixes")
        for i, prefix in enumerate(routes):
            if prefix not in prefixes:
                raise _Bad(f"routes[{i}]", f"no route has the prefix {prefix!r}")
        allowed = frozenset(routes)
    return Consumer(name=name, digests=digests, plan=plan, routes=allowed)


def _in_list(index: int) -> str:
    return f"consumers[{index}]"


def _field(where: str, sep: str, field_name: str) -> str:
    return f"{where}{sep}{field_name}" if field_name else where


def read_consumers_file(
    path: Path, plans: Mapping[str, object], default_plan: str, prefixes: frozenset[str]
) -> list[tuple[int, Consumer]]:
    """One consumer per line, with its line number; blank lines and '#' lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"consumers_file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"consumers_file {path}: not UTF-8 text") from None
    numbered = [
        (number, line)
        for number, line in enumerate(text.split("\n"), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    try:
        # One parser call for the whole file: ~10x faster than one per line.
        nodes = json.loads("[" + ",".join(line for _, line in numbered) + "]")
        if len(nodes) != len(numbered):
            raise ValueError("a line holds more than one value")
    except (ValueError, RecursionError):
        nodes = [_line_json(path, number, line) for number, line in numbered]
    out = []
    for (number, _), node in zip(numbered, nodes, strict=True):
        try:
            out.append((number, _consumer(node, plans, default_plan, prefixes)))
        except _Bad as bad:
            field_name, message = bad.args
            where = _field(f"consumers_file {path} line {number}", ", field ", field_name)
            raise ConfigError(f"{where}: {message}") from None
    return out


def _line_json(path: Path, number: int, line: str) -> Any:
    try:
        return json.loads(line)
    except (ValueError, RecursionError) as exc:
        message = getattr(exc, "msg", "invalid JSON")
        raise ConfigError(f"consumers_file {path} line {number}: not JSON ({message})") from None


def parse_consumers(
    raw: Any,
    file: Path | None,
    plans: Mapping[str, object],
    default_plan: str,
    prefixes: frozenset[str],
) -> tuple[Consumer, ...]:
    """`consumers:` then `consumers_file:`; names and keys must each be unique across both."""
    raw = raw or []
    if not isinstance(raw, list):
        raise ConfigError("consumers: expected a list of {name, key_sha256}")
    consumers: list[Consumer] = []
    for i, node in enumerate(raw):
        try:
            consumers.append(_consumer(node, plans, default_plan, prefixes))
        except _Bad as bad:
            field_name, message = bad.args
            raise ConfigError(f"{_field(_in_list(i), '.', field_name)}: {message}") from None
    listed = len(consumers)
    numbers: list[int] = []
    if file is not None:
        for number, consumer in read_consumers_file(file, plans, default_plan, prefixes):
            numbers.append(number)
            consumers.append(consumer)

    def where(index: int, field_name: str) -> str:
        if index < listed:
            return _field(_in_list(index), ".", field_name)
        return _field(
            f"consumers_file {file} line {numbers[index - listed]}", ", field ", field_name
        )

    names: set[str] = set()
    digests: set[bytes] = set()
    for index, consumer in enumerate(consumers):
        if consumer.name in names:
            raise ConfigError(f"{where(index, 'name')}: {consumer.name!r} is declared twice")
        names.add(consumer.name)
        for j, digest in enumerate(consumer.digests):
            if digest in digests:
                field_name = "key_sha256" if len(consumer.digests) == 1 else f"keys_sha256[{j}]"
                raise ConfigError(f"{where(index, field_name)}: the same key is declared twice")
            digests.add(digest)
    return tuple(consumers)
