"""Consumers: a name, one or more key digests (rotation), a plan and an optional route allow-list.

They come from `consumers:` in the YAML and from `consumers_file:` (JSON Lines, one consumer
object per line), which holds large sets: JSON parses 100,000 consumers in a fraction of the
time YAML needs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apigw.config.fields import ConfigError

# The demo key `secret002oUdaRJA`, kept working in the shipped config for the classic curl
# example; only its digest is stored anywhere.
DEMO_KEY_DIGEST = bytes.fromhex("fa07946b996ae455463ff22d78f25da36e98425b4aa1360f46c030f4ceb315c6")

_CONSUMER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
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


def _digest(node: Any, where: str) -> bytes:
    if not isinstance(node, str) or not _HEX_DIGEST.fullmatch(node):
        raise ConfigError(f"{where}: expected 64 hex digits (run `python -m apigw.keys NAME`)")
    return bytes.fromhex(node)


def parse_consumer(
    node: Any,
    where: str,
    plans: Mapping[str, object],
    default_plan: str,
    prefixes: frozenset[str],
    sep: str = ".",
) -> Consumer:
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: expected a mapping with name and key_sha256")
    unknown = node.keys() - CONSUMER_FIELDS
    if unknown:
        raise ConfigError(
            f"{where}{sep}{sorted(map(str, unknown))[0]}: unknown field "
            f"(allowed: {', '.join(sorted(CONSUMER_FIELDS))})"
        )
    name = node.get("name")
    if not isinstance(name, str) or not _CONSUMER_NAME.fullmatch(name):
        raise ConfigError(f"{where}{sep}name: 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    one = node.get("key_sha256")
    many = node.get("keys_sha256")
    if (one is None) == (many is None):
        raise ConfigError(f"{where}: give exactly one of key_sha256 or keys_sha256")
    if one is not None:
        digests: tuple[bytes, ...] = (_digest(one, f"{where}{sep}key_sha256"),)
    else:
        if not isinstance(many, list) or not many:
            raise ConfigError(f"{where}{sep}keys_sha256: expected a non-empty list of digests")
        digests = tuple(_digest(d, f"{where}{sep}keys_sha256[{i}]") for i, d in enumerate(many))
    plan = node.get("plan", default_plan)
    if plan not in plans:
        raise ConfigError(f"{where}{sep}plan: no plan named {plan!r} under plans:")
    routes = node.get("routes")
    allowed = None
    if routes is not None:
        if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
            raise ConfigError(f"{where}{sep}routes: expected a list of route prefixes")
        for i, prefix in enumerate(routes):
            if prefix not in prefixes:
                raise ConfigError(f"{where}{sep}routes[{i}]: no route has the prefix {prefix!r}")
        allowed = frozenset(routes)
    return Consumer(name=name, digests=digests, plan=plan, routes=allowed)


def read_consumers_file(
    path: Path, plans: Mapping[str, object], default_plan: str, prefixes: frozenset[str]
) -> Iterator[tuple[str, Consumer]]:
    """One consumer per line, with where it was; blank lines and '#' lines are skipped."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"consumers_file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"consumers_file {path}: not UTF-8 text") from None
    loads = json.loads
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.isspace() or line.lstrip().startswith("#"):
            continue
        where = f"consumers_file {path} line {number}"
        try:
            node = loads(line)
        except ValueError as exc:
            raise ConfigError(f"{where}: not JSON ({getattr(exc, 'msg', exc)})") from None
        yield where, parse_consumer(node, where, plans, default_plan, prefixes, sep=", field ")


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
    entries: list[tuple[str, Consumer]] = [
        (f"consumers[{i}]", parse_consumer(c, f"consumers[{i}]", plans, default_plan, prefixes))
        for i, c in enumerate(raw)
    ]
    if file is not None:
        entries.extend(read_consumers_file(file, plans, default_plan, prefixes))
    names: set[str] = set()
    digests: set[bytes] = set()
    for where, consumer in entries:
        sep = "." if where.startswith("consumers[") else ", field "
        if consumer.name in names:
            raise ConfigError(f"{where}{sep}name: {consumer.name!r} is declared twice")
        names.add(consumer.name)
        for j, digest in enumerate(consumer.digests):
            if digest in digests:
                field = "key_sha256" if len(consumer.digests) == 1 else f"keys_sha256[{j}]"
                raise ConfigError(f"{where}{sep}{field}: the same key is declared twice")
            digests.add(digest)
    return tuple(consumer for _, consumer in entries)
