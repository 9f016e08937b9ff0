"""Client API keys: stored as SHA-256 digests, looked up by digest, minted here.

`python -m apigw.keys NAME` prints a new key once, and the config entry holding its digest;
`--append FILE` adds that entry to a `consumers_file` (JSON Lines) instead.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
from pathlib import Path

from apigw.config.consumers import Consumer, digest_of, valid_consumer_name

KEY_PREFIX = "gw_"


class Keyring:
    """Finds the consumer of a presented key: one hash of the key, one dict lookup.

    The lookup is keyed by the SHA-256 of what the client sent. Its timing can only depend on
    that digest, which the client can compute itself; it tells nothing about a stored digest,
    and a stored digest would not give a key anyway (keys are high-entropy, SHA-256 is
    preimage-resistant). So O(1) lookup costs no secrecy, unlike comparing raw keys.
    """

    __slots__ = ("_by_digest",)

    def __init__(self, consumers: tuple[Consumer, ...]) -> None:
        self._by_digest = _index(consumers)

    def replace(self, consumers: tuple[Consumer, ...]) -> None:
        """Swap in a reloaded set at once: a lookup sees the old set or the new, never a mix."""
        self._by_digest = _index(consumers)

    def consumer_for(self, key: bytes) -> Consumer | None:
        return self._by_digest.get(hashlib.sha256(key).digest())


def _index(consumers: tuple[Consumer, ...]) -> dict[bytes, Consumer]:
    # Several digests of one consumer (key rotation) lead to the same object, so to one name
    # and one set of counters.
    return {digest: c for c in consumers for digest in c.digests}


def mint_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def append_consumer(path: Path, name: str, digest: str, plan: str | None) -> None:
    """Add one line to a consumers_file; the name must not be there yet."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            existing = json.loads(line).get("name")
        except (ValueError, AttributeError):
            raise SystemExit(f"{path} line {number}: not a JSON object; fix it first") from None
        if existing == name:
            raise SystemExit(f"{path}: a consumer named {name!r} is already there")
    entry: dict[str, str] = {"name": name, "key_sha256": digest}
    if plan is not None:
        entry["plan"] = plan
    with path.open("a", encoding="utf-8") as out:
        if text and not text.endswith("\n"):
            out.write("\n")
        out.write(json.dumps(entry) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apigw.keys",
        description="Mint a client API key. The key is shown once; the config keeps its digest.",
    )
    parser.add_argument("name", help="consumer name sent to the backends in X-Consumer-Name")
    parser.add_argument(
        "--append",
        metavar="FILE",
        type=Path,
        help="add the consumer to this consumers_file (JSON Lines), then reload the gateway",
    )
    parser.add_argument("--plan", help="the consumer's plan (default: default_plan)")
    args = parser.parse_args(argv)
    if not valid_consumer_name(args.name):
        parser.error("NAME: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    key = mint_key()
    digest = digest_of(key.encode()).hex()
    shown = f"API key for {args.name} (shown once, give it to the client):\n  {key}\n\n"
    if args.append is not None:
        append_consumer(args.append, args.name, digest, args.plan)
        sys.stdout.write(
            shown + f"Added to {args.append}; reload the gateway (SIGHUP) to accept it.\n"
        )
        return 0
    plan = f"    plan: {args.plan}\n" if args.plan else ""
    sys.stdout.write(
        shown + "Add to consumers: in gateway.yaml:\n"
        f"  - name: {args.name}\n    key_sha256: {digest}\n{plan}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
