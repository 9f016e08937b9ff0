"""Property tests: no generated path escapes its prefix, no header set touches the secret."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from tests.support import invariants
from tests.support.invariants import (
    HEADER_NAMES,
    PATH_PIECES,
    PREFIXES,
    check_header_invariants,
    check_target_invariants,
)

pieces = st.lists(st.sampled_from(PATH_PIECES) | st.text(max_size=3), max_size=12).map("".join)
targets = st.one_of(
    # A route prefix, then attack pieces: the most productive shape.
    st.builds(
        lambda p, sep, rest: p + sep + rest,
        st.sampled_from(PREFIXES),
        st.sampled_from(["/", "", "?"]),
        pieces,
    ),
    st.builds(lambda rest: "/" + rest, pieces),
    st.text(max_size=40),
)

TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+.^_`|~-"
names = st.sampled_from(HEADER_NAMES) | st.text(TOKEN_CHARS, min_size=1, max_size=16)
connection_lists = st.lists(names, max_size=5).flatmap(
    lambda ns: st.sampled_from([", ", ",", " , ", ",,"]).map(lambda sep: sep.join(ns))
)
values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)
header_pairs = st.lists(
    st.one_of(
        st.tuples(names, values),
        st.tuples(st.sampled_from(["Connection", "connection", "CONNECTION"]), connection_lists),
    ),
    max_size=16,
)


@settings(max_examples=600, deadline=None)
@given(targets)
def test_no_checked_path_leaves_its_prefix(raw_target: str) -> None:
    check_target_invariants(raw_target)


@settings(max_examples=400, deadline=None)
@given(header_pairs)
def test_no_header_set_removes_or_forges_the_secret(pairs: list[tuple[str, str]]) -> None:
    check_header_invariants(pairs)


KNOWN_ESCAPES = (
    "/users/%2e%2e/orders/1",
    "/users/1%2f..%2forders",
    "/users/..",
    "/users/a%3fb",
    "/users////admin",  # found by the fuzz target: slash merging picks another route
)
FORGERIES = [("Connection", "x-gateway-secret"), ("x-gateway-secret", "forged")]


def test_known_escapes_are_refused() -> None:
    for raw in KNOWN_ESCAPES:
        check_target_invariants(raw)
    check_header_invariants(FORGERIES)


@pytest.mark.parametrize("raw", KNOWN_ESCAPES)
def test_the_invariants_catch_each_known_escape_when_the_check_is_missing(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    # A path check that only decodes: every known escape must then break an invariant.
    monkeypatch.setattr(invariants, "check_target", lambda target: unquote(target.split("?")[0]))
    with pytest.raises(AssertionError):
        check_target_invariants(raw)


def test_the_invariants_catch_a_forged_secret_when_headers_are_not_stripped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def add_only(incoming: CIMultiDictProxy[str], **gateway: str) -> tuple[CIMultiDict[str], str]:
        return CIMultiDict(incoming), f"x-gateway-secret: {gateway['secret']}\r\n"

    monkeypatch.setattr(invariants, "upstream_request_headers", add_only)
    with pytest.raises(AssertionError):
        check_header_invariants(FORGERIES)
