"""Client consumers as the config declares them: a name and the SHA-256 digest of its key."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from apigw.config.fields import ConfigError, mapping

# The demo key `secret002oUdaRJA`, kept working in the shipped config for the classic curl
# example; only its digest is stored anywhere.
DEMO_KEY_DIGEST = bytes.fromhex("fa07946b996ae455463ff22d78f25da36e98425b4aa1360f46c030f4ceb315c6")

_CONSUMER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Consumer:
    name: str
    digest: bytes


def digest_of(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def _parse_consumer(node: Any, where: str) -> Consumer:
    node = mapping(node, where, {"name", "key_sha256"})
    name = node.get("name")
    if not isinstance(name, str) or not _CONSUMER_NAME.fullmatch(name):
        raise ConfigError(f"{where}.name: 1-64 letters, digits, '.', '_' or '-', got {name!r}")
    digest = node.get("key_sha256")
    if not isinstance(digest, str) or not _HEX_DIGEST.fullmatch(digest.lower()):
        raise ConfigError(
            f"{where}.key_sha256: expected 64 hex digits (run `python -m apigw.keys NAME`)"
        )
    return Consumer(name=name, digest=bytes.fromhex(digest))


def parse_consumers(raw: Any) -> tuple[Consumer, ...]:
    """The `consumers:` list; names and keys must each be unique."""
    raw = raw or []
    if not isinstance(raw, list):
        raise ConfigError("consumers: expected a list of {name, key_sha256}")
    consumers = tuple(_parse_consumer(c, f"consumers[{i}]") for i, c in enumerate(raw))
    names: set[str] = set()
    digests: set[bytes] = set()
    for i, consumer in enumerate(consumers):
        if consumer.name in names:
            raise ConfigError(f"consumers[{i}].name: {consumer.name!r} is declared twice")
        if consumer.digest in digests:
            raise ConfigError(f"consumers[{i}].key_sha256: the same key is declared twice")
        names.add(consumer.name)
        digests.add(consumer.digest)
    return consumers
