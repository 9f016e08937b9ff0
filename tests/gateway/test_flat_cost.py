"""The per-request cost does not grow with the config: counted in interpreter steps, not timed.

A step is one Python line executed or one C function called, in any frame, while the lookup
runs. A lookup that scans every route (or compares every key) takes steps in proportion to the
table; one that probes a dict takes the same number at 10 entries as at 10,000.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from apigw.config.consumers import Consumer, digest_of
from apigw.keys import Keyring
from apigw.routing import RouteTable


def count_steps(call: Callable[[], object]) -> int:
    steps = 0

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal steps
        if event == "line":
            steps += 1
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal steps
        if event == "c_call":
            steps += 1

    sys.settrace(on_line)
    sys.setprofile(on_call)
    try:
        call()
    finally:
        sys.setprofile(None)
        sys.settrace(None)
    return steps


def make_table(size: int) -> RouteTable[str]:
    # Routes that share the first letters of the real ones (the worst case for a scan that
    # compares prefixes one by one), and deeper routes elsewhere in the table.
    prefixes = [f"/users{n}" for n in range(size // 2)]
    prefixes += [f"/svc{n}/api/v1" for n in range(size - size // 2 - 3)]
    prefixes += ["/users", "/users/admin", "/orders"]
    return RouteTable({p: p for p in prefixes})


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/users/1", "/users"),
        ("/users/admin/1", "/users/admin"),
        ("/orders/1/items/2", "/orders"),
        ("/nothing/here", None),
        ("/users" + "/a" * 2000, "/users"),
    ],
    ids=["hit", "nested-hit", "deep-path", "miss", "thousands-of-segments"],
)
def test_route_matching_steps_do_not_grow_with_routes(path: str, expected: str | None) -> None:
    small, large = make_table(10), make_table(10_000)
    assert small.match(path) == large.match(path) == expected
    assert count_steps(lambda: large.match(path)) == count_steps(lambda: small.match(path))


def make_keyring(size: int) -> Keyring:
    consumers = tuple(
        Consumer(f"c{n}", (digest_of(f"key-{n}".encode()),), "unlimited") for n in range(size)
    )
    return Keyring(consumers)


@pytest.mark.parametrize(
    ("key", "expected"),
    [(b"key-3", "c3"), (b"no-such-key", None), (b"x" * 4096, None)],
    ids=["known", "unknown", "long"],
)
def test_key_lookup_steps_do_not_grow_with_consumers(key: bytes, expected: str | None) -> None:
    small, large = make_keyring(10), make_keyring(10_000)
    for keyring in (small, large):
        found = keyring.consumer_for(key)
        assert (found.name if found else None) == expected
    assert count_steps(lambda: large.consumer_for(key)) == count_steps(
        lambda: small.consumer_for(key)
    )


def test_step_counter_sees_a_scan_grow() -> None:
    # The guard above can fail: a linear scan over the same routes takes far more steps.
    def scan(table: dict[str, str], path: str) -> str | None:
        for prefix in table:
            if path == prefix or path.startswith(prefix + "/"):
                return prefix
        return None

    small = {f"/r{n}": "" for n in range(10)}
    large = {f"/r{n}": "" for n in range(10_000)}
    assert count_steps(lambda: scan(large, "/users/1")) > 100 * count_steps(
        lambda: scan(small, "/users/1")
    )
