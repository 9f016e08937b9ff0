"""Counting in this process (`store: local`, and the Redis store's fallback): exact within it.

The same rules as the Redis script (script.lua): GCRA for a rate with a burst, calendar
counters for quotas, every policy checked before any is charged. Under gunicorn each worker
counts alone (see `divide_by_workers`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from math import ceil, floor
from typing import Any, NoReturn

from apigw.ratelimit.policies import (
    GCRA,
    Calendar,
    Limits,
    Policy,
    limit_field,
    limit_item,
    too_many_requests,
)

# Float sums of intervals (0.1 + 0.1 + ...) must not refuse the last request of a burst.
_EPSILON = 1e-9
# More requests left than any policy can have: the first policy checked is the closest yet.
_NONE_YET = 2**63
_ONE_SECOND = 1.0 + _EPSILON
_MAX_FIELDS = 4096


class LocalStore:
    """Counters by subject (a consumer name, or a route prefix for a route's shared rate) and
    policy name, so they survive a reload and follow a consumer across its keys."""

    __slots__ = ("_calendar", "_clock", "_fields", "_state")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._calendar = Calendar()
        # GCRA: [theoretical arrival time]; quota: [end of the counted period, count] (an int:
        # int() on it would cost the request more than the rest of its quota check).
        self._state: dict[str, dict[str, list[Any]]] = {}
        # RateLimit field texts by (policy, r, t): a steady client sees the same few again and
        # again, and formatting two numbers costs more than the rest of admit() together.
        self._fields: dict[tuple[str, int, int], str] = {}

    def admit(self, consumer: str, limits: Limits) -> tuple[str, str]:
        """Charge one request, or raise the 429 without charging anything.

        Returns the `RateLimit-Policy` and `RateLimit` fields of the response. It runs on
        every request of a limited consumer, so it is written for the interpreter: each
        policy is checked and charged in one pass, and a refusal takes back what the pass
        already charged (the rare path pays for the undo, not the common one)."""
        now = self._clock()
        state = self._state
        mine = state.get(consumer) or state.setdefault(consumer, {})
        # The policy closest to running out: fewest requests left, then the longer wait.
        best_name, best_r, best_wait = "", _NONE_YET, 0.0
        for policy in limits.policies:
            slots = state.setdefault(policy.scope, {}) if policy.scope else mine
            slot = slots.get(policy.name)
            if policy.is_rate:
                if slot is None:
                    slot = slots[policy.name] = [now]
                tat = slot[0]
                # How far the theoretical arrival time runs ahead of now, this request taken.
                ahead = (tat - now if tat > now else 0.0) + policy.interval
                if ahead > policy.tolerance:
                    self._take_back(consumer, limits, policy)
                    self._refuse(consumer, limits, now)
                slot[0] = now + ahead
                # Requests still possible now, rounded down (math.floor: a C call, where int() goes
                # through the type machinery).
                remaining = floor((policy.tolerance - ahead) / policy.interval)
                if remaining <= best_r:
                    wait = ahead - (policy.burst - remaining - 1) * policy.interval
                    if remaining < best_r or wait > best_wait:
                        best_name, best_r, best_wait = policy.name, remaining, wait
            else:
                # [end of the counted period, count]: a new period starts a new count.
                if slot is None or now >= slot[0]:
                    slot = slots[policy.name] = [self._calendar.period(policy.period, now)[1], 0]
                used = slot[1]
                if used >= policy.limit:
                    self._take_back(consumer, limits, policy)
                    self._refuse(consumer, limits, now)
                slot[1] = used + 1
                remaining = policy.limit - used - 1
                if remaining <= best_r:
                    wait = slot[0] - now
                    if remaining < best_r or wait > best_wait:
                        best_name, best_r, best_wait = policy.name, remaining, wait
        field = limits.field if now < limits.field_until else limits.policy_field(now)
        # Whole seconds, rounded up: 1 for a rate's next request within the second (the usual
        # answer, found without the ceil() call).
        key = (
            best_name,
            best_r,
            1 if _EPSILON < best_wait <= _ONE_SECOND else ceil(best_wait - _EPSILON),
        )
        text = self._fields.get(key)
        if text is None:
            if len(self._fields) >= _MAX_FIELDS:
                self._fields.clear()
            text = self._fields[key] = limit_item(best_name, best_r, key[2])
        return field, text

    def _take_back(self, consumer: str, limits: Limits, refused: Policy) -> None:
        """Undo what admit charged for the policies before `refused`: a GCRA's arrival time
        goes back one interval (any time not after now means the same), a count down one."""
        for policy in limits.policies:
            if policy is refused:
                return
            slot = self._state[policy.scope or consumer][policy.name]
            if policy.kind == GCRA:
                slot[0] -= policy.interval
            else:
                slot[1] -= 1

    def _refuse(self, consumer: str, limits: Limits, now: float) -> NoReturn:
        """The 429, naming every policy the request violates, with the wait until all of them
        admit it; the counters are as they were before the request."""
        violated: list[str] = []
        retry = 0.0
        for policy in limits.policies:
            slot = self._state.get(policy.scope or consumer, {}).get(policy.name)
            if policy.kind == GCRA:
                tat = slot[0] if slot is not None else now
                ahead = (tat - now if tat > now else 0.0) + policy.interval
                if ahead > policy.tolerance:
                    violated.append(policy.name)
                    retry = max(retry, ahead - policy.tolerance)
            else:
                ends = self._calendar.period(policy.period, now)[1]
                used = slot[1] if slot is not None and now < slot[0] else 0
                if used >= policy.limit:
                    violated.append(policy.name)
                    retry = max(retry, ends - now)
        fields = (limits.policy_field(now), self._standing(consumer, limits, now))
        raise too_many_requests(violated, retry, fields)

    def _standing(self, consumer: str, limits: Limits, now: float) -> str:
        """`RateLimit` without charging: the policy with the fewest requests left."""
        best_name, best_r, best_wait = "", -1, 0.0
        for policy in limits.policies:
            slot = self._state.get(policy.scope or consumer, {}).get(policy.name)
            if policy.kind == GCRA:
                interval, burst = policy.interval, policy.burst
                ahead = max(0.0, slot[0] - now) if slot is not None else 0.0
                remaining = max(0, int((burst * interval - ahead + _EPSILON) // interval))
                if remaining >= burst:
                    remaining, wait = burst, 0.0
                else:
                    wait = ahead - (burst - remaining - 1) * interval
            else:
                ends = self._calendar.period(policy.period, now)[1]
                used = slot[1] if slot is not None and now < slot[0] else 0
                remaining, wait = max(0, policy.limit - int(used)), ends - now
            if best_r < 0 or remaining < best_r or (remaining == best_r and wait > best_wait):
                best_name, best_r, best_wait = policy.name, remaining, wait
        return limit_field(best_name, best_r, best_wait)

    def forget_all_but(self, subjects: Collection[str]) -> None:
        """After a reload: drop the counters of consumers and routes that are gone."""
        for subject in [s for s in self._state if s not in subjects]:
            del self._state[subject]
