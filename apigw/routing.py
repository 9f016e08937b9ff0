"""Route matching on a checked path: longest prefix on a segment boundary, no escapes.

aiohttp matches routes on the decoded path and yarl resolves `..` when a URL is built, so the
gateway checks the raw request target itself and routes on what it checked.
"""

from __future__ import annotations

import re
from typing import Generic, TypeVar
from urllib.parse import unquote

from apigw.shared.errors import ProblemError

T = TypeVar("T")

# Percent-encoded characters that would change how a backend splits the path: '/', '\', '?',
# '#', NUL, and '.' (only refused when it builds a dot-segment, see below).
_FORBIDDEN_ESCAPE = re.compile(r"%(?:2[fF]|5[cC]|3[fF]|23|00)")
# Characters that never belong in a raw request target: '#', backslash, controls, space, DEL.
_FORBIDDEN_RAW = re.compile(r"[#\\\x00-\x20\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_target(raw_target: str) -> str:
    """Return the decoded path of a raw origin-form request target, or raise a 400."""
    # A slice, not startswith(): str.startswith parses its arguments the slow way.
    if raw_target[:1] != "/":
        raise ProblemError(400, "The request target must be a path starting with '/'.")
    if _FORBIDDEN_RAW.search(raw_target):
        raise ProblemError(400, "The request target contains a forbidden character.")
    path = raw_target.partition("?")[0]
    if "//" in path or "%" in path or "." in path:
        return _check_clean_path(path)
    # Nearly every target: nothing to decode and no segment to refuse, the path is as sent.
    return path


def check_path(raw_path: str) -> str:
    """Return the decoded form of a raw path (no query), or raise a 400."""
    if raw_path[:1] != "/":
        raise ProblemError(400, "The path must start with '/'.")
    if _FORBIDDEN_RAW.search(raw_path):
        raise ProblemError(400, "The path contains a forbidden character.")
    return _check_clean_path(raw_path)


def _check_clean_path(raw_path: str) -> str:
    # A path starting with '/' and free of _FORBIDDEN_RAW characters.
    if "//" in raw_path:
        # A backend that merges slashes would read /users//admin as /users/admin, a route
        # the gateway did not choose (and whose limits and policies it did not apply).
        raise ProblemError(400, "Empty path segments ('//') are not allowed.")
    if "%" in raw_path:
        if _FORBIDDEN_ESCAPE.search(raw_path):
            raise ProblemError(400, "The path contains a forbidden character.")
        try:
            decoded = unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            raise ProblemError(400, "The path is not valid percent-encoded UTF-8.") from None
        if _CONTROL.search(decoded):
            raise ProblemError(400, "The path contains a forbidden character.")
    else:
        decoded = raw_path
    if "." in decoded:
        for segment in decoded.split("/"):
            if segment == "." or segment == "..":
                raise ProblemError(400, "Dot-segments are not allowed in the path.")
    return decoded


class RouteTable(Generic[T]):
    """Maps a checked path to the target of the longest matching prefix.

    A lookup costs one dict probe per path segment at most, whatever the number of routes: it
    starts from the path cut to as many segments as the deepest prefix under the path's first
    segment has, then tries each shorter cut at a '/', so the first hit is the longest prefix
    that ends on a segment boundary. A path whose first segment is a prefix with nothing
    deeper under it (`/users` alone: the usual table) takes one probe.
    """

    __slots__ = ("_by_prefix", "_depth_under", "_root", "_shallow")

    def __init__(self, entries: dict[str, T]) -> None:
        self._by_prefix = {p: t for p, t in entries.items() if p != "/"}
        # First segment ('/users') -> the most segments of a prefix starting with it.
        self._depth_under: dict[str, int] = {}
        for prefix in self._by_prefix:
            first = prefix[: prefix.find("/", 1)] if prefix.find("/", 1) > 0 else prefix
            depth = prefix.count("/")
            self._depth_under[first] = max(depth, self._depth_under.get(first, 0))
        # A one-segment prefix with no longer prefix under it is the answer for every path
        # under its segment.
        self._shallow = {
            first: self._by_prefix[first]
            for first, depth in self._depth_under.items()
            if depth == 1
        }
        self._root = entries.get("/")

    def match(self, path: str) -> T | None:
        end = path.find("/", 1)
        first = path[:end] if end > 0 else path
        target = self._shallow.get(first)
        if target is not None:
            return target
        depth = self._depth_under.get(first, 0)
        if not depth:
            return self._root
        # Nothing deeper than the deepest prefix under this first segment can match: a path
        # of thousands of segments costs as many probes as that prefix has segments.
        while depth > 1 and end > 0:
            end = path.find("/", end + 1)
            depth -= 1
        candidate = path[:end] if end > 0 else path
        by_prefix = self._by_prefix
        while True:
            target = by_prefix.get(candidate)
            if target is not None:
                return target
            cut = candidate.rfind("/")
            if cut <= 0:
                return self._root
            candidate = candidate[:cut]
