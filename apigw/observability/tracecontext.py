"""W3C Trace Context (`traceparent`, `tracestate`): continue a valid incoming trace, else start one.

The gateway is a participant: the backend gets the same trace id with the gateway's own span id
as its parent. An invalid or missing `traceparent` starts a new trace, and its `tracestate` is
dropped with it (the W3C rule). Ids come from `os.urandom` as hex (formatting a
`random.getrandbits` number as hex costs twice as much); nothing to reseed after a fork. A
request's ids are cut from one draw made for it (`Observer.begin`): one system call, not two.
"""

from __future__ import annotations

import re
from os import urandom

from multidict import CIMultiDictProxy

from apigw.shared.headers import TRACEPARENT_HEADER, TRACESTATE_HEADER

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# What the gateway keeps of a tracestate: the W3C limits a participant must propagate.
_MAX_MEMBERS = 32
_MAX_TRACESTATE = 512
_MAX_MEMBER = 128
# Sampled: a backend that samples by its parent records traces the gateway starts.
NEW_TRACE_FLAGS = "01"


def new_span_id() -> str:
    span_id = urandom(8).hex()
    while span_id == _ZERO_SPAN:
        span_id = urandom(8).hex()  # an invalid id (W3C), drawn once in 2**64 times
    return span_id


def parse_traceparent(value: str) -> tuple[str, str, str] | None:
    """(trace id, parent id, flags) of a valid `traceparent` value, else None."""
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags, rest = match.groups()
    # Version ff is invalid; version 00 has exactly four fields; a later version may add some.
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if flags not in ("00", "01"):
        # Only sampled (bit 0) and random (bit 1) mean something in the version we send.
        flags = f"{int(flags, 16) & 0x03:02x}"
    return trace_id, parent_id, flags


def clean_tracestate(values: list[str]) -> str | None:
    """The incoming `tracestate` headers joined, without empty, oversized or surplus members."""
    members = [m.strip() for value in values for m in value.split(",")]
    kept: list[str] = []
    size = 0
    for member in members:
        if not member or len(member) > _MAX_MEMBER or "=" not in member:
            continue
        if len(kept) == _MAX_MEMBERS or size + len(member) + 1 > _MAX_TRACESTATE:
            break
        kept.append(member)
        size += len(member) + 1
    return ",".join(kept) or None


class TraceContext:
    """The trace a request belongs to, and the gateway's span in it.

    `start_trace` fills it in; the per-request record (apigw/exchange.py) extends it, so a
    request costs one object, not two.
    """

    __slots__ = ("flags", "parent_id", "span_id", "trace_id", "tracestate")

    trace_id: str
    span_id: str  # the gateway's span: the parent the backend sees
    flags: str
    parent_id: str | None  # the caller's span, when the trace was continued
    tracestate: str | None

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def start_trace(context: TraceContext, headers: CIMultiDictProxy[str], fresh: str) -> None:
    """Continue the caller's trace when its `traceparent` is valid, else start a new one.

    `fresh` is at least 48 random hex digits: a new trace id, then the gateway's span id."""
    span_id = fresh[32:48]
    if span_id == _ZERO_SPAN:
        span_id = new_span_id()  # an invalid id (W3C), drawn once in 2**64 times
    context.span_id = span_id
    value = headers.get(TRACEPARENT_HEADER)
    if value is not None:
        # Two traceparent headers are as invalid as a malformed one.
        parsed = parse_traceparent(value) if len(headers.getall(TRACEPARENT_HEADER)) == 1 else None
        if parsed is not None:
            context.trace_id, context.parent_id, context.flags = parsed
            states = headers.getall(TRACESTATE_HEADER, ())
            context.tracestate = clean_tracestate(list(states)) if states else None
            return
    trace_id = fresh[:32]
    while trace_id == _ZERO_TRACE:
        trace_id = urandom(16).hex()  # as invalid, and as rare
    context.trace_id = trace_id
    context.flags = NEW_TRACE_FLAGS
    context.parent_id = None
    context.tracestate = None
