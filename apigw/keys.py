"""Client API keys: stored as SHA-256 digests, checked in constant time, minted here.

`python -m apigw.keys NAME` prints a new key once, and the config entry holding its digest.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import secrets
import sys

from apigw.config.consumers import Consumer, digest_of

KEY_PREFIX = "gw_"


class Keyring:
    """Looks a presented key up among the configured digests without a timing side channel."""

    __slots__ = ("_entries",)

    def __init__(self, consumers: tuple[Consumer, ...]) -> None:
        self._entries = tuple((c.digest, c.name) for c in consumers)

    def replace(self, consumers: tuple[Consumer, ...]) -> None:
        """Swap in a reloaded set at once: a lookup sees the old set or the new, never a mix."""
        self._entries = tuple((c.digest, c.name) for c in consumers)

    def consumer_for(self, key: bytes) -> str | None:
        presented = hashlib.sha256(key).digest()
        found = None
        # Every entry is compared, so the time taken does not tell which entry matched.
        for digest, name in self._entries:
            if hmac.compare_digest(presented, digest):
                found = name
        return found


def mint_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apigw.keys",
        description="Mint a client API key. The key is shown once; the config keeps its digest.",
    )
    parser.add_argument("name", help="consumer name sent to the backends in X-Consumer-Name")
    args = parser.parse_args(argv)
    key = mint_key()
    digest = digest_of(key.encode()).hex()
    sys.stdout.write(
        f"API key for {args.name} (shown once, give it to the client):\n  {key}\n\n"
        "Add to consumers: in gateway.yaml:\n"
        f"  - name: {args.name}\n    key_sha256: {digest}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
