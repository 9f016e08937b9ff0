"""Counting in this process (`store: local`, and the Redis store's fallback): exact within it.

The same rules as the Redis script (ratelimit.lua): GCRA for a rate with a burst, calendar
counters for quotas, every policy checked before any is charged. Under gunicorn each worker
counts alone (see `divide_by_workers`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from apigw.policies import GCRA, Calendar, Limits, limit_field, too_many_requests

# Float sums of intervals (0.1 + 0.1 + ...) must not refuse the last request of a burst.
_EPSILON = 1e-9


class LocalStore:
    """Counters by subject (a consumer name, or a route prefix for a route's shared rate) and
    policy name, so they survive a reload and follow a consumer across its keys."""

    __slots__ = ("_calendar", "_clock", "_state")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._calendar = Calendar()
        # GCRA: [theoretical arrival time]; quota: [period id, count].
        self._state: dict[str, dict[str, list[float]]] = {}

    def admit(self, consumer: str, limits: Limits) -> tuple[str, str]:
        """Charge one request, or raise the 429 without charging anything.

        Returns the `RateLimit-Policy` and `RateLimit` fields of the response. On every
        request of a limited consumer: kept to plain arithmetic and dict lookups."""
        now = self._clock()
        state = self._state
        writes: list[tuple[list[float], float, float]] = []
        violated: list[str] | None = None
        retry = 0.0
        best_name, best_r, best_wait = "", -1, 0.0
        for policy in limits.policies:
            subject = policy.scope or consumer
            slots = state.get(subject)
            if slots is None:
                slots = state[subject] = {}
            slot = slots.get(policy.name)
            if policy.kind == GCRA:
                if slot is None:
                    slot = slots[policy.name] = [now]
                interval = policy.interval
                # How far the theoretical arrival time runs ahead of now, this request taken.
                ahead = max(slot[0], now) + interval - now
                if ahead > policy.tolerance + _EPSILON:
                    violated = [*(violated or ()), policy.name]
                    retry = max(retry, ahead - policy.tolerance)
                    remaining, wait = 0, 0.0
                else:
                    writes.append((slot, now + ahead, 0.0))
                    remaining = int((policy.tolerance - ahead + _EPSILON) // interval)
                    wait = ahead - (policy.burst - remaining - 1) * interval
            else:
                span = policy.span
                if span:
                    ident = now // span
                    ends = (ident + 1) * span
                else:
                    ident, ends = self._calendar.period(policy.period, now)
                if slot is None:
                    slot = slots[policy.name] = [ident, 0]
                used = slot[1] if slot[0] == ident else 0
                wait = ends - now
                if used >= policy.limit:
                    violated = [*(violated or ()), policy.name]
                    retry = max(retry, wait)
                    remaining = 0
                else:
                    writes.append((slot, ident, used + 1))
                    remaining = policy.limit - int(used) - 1
            if best_r < 0 or remaining < best_r or (remaining == best_r and wait > best_wait):
                best_name, best_r, best_wait = policy.name, remaining, wait
        if violated:
            # Nothing was charged; what the 429 reports is the state as it stands.
            fields = (limits.policy_field(now), self._standing(consumer, limits, now))
            raise too_many_requests(violated, retry, fields)
        for slot, first, second in writes:
            slot[0] = first
            if len(slot) == 2:
                slot[1] = second
        return limits.policy_field(now), limit_field(best_name, best_r, best_wait)

    def _standing(self, consumer: str, limits: Limits, now: float) -> str:
        """`RateLimit` without charging: the policy with the fewest requests left."""
        best_name, best_r, best_wait = "", -1, 0.0
        for policy in limits.policies:
            slot = self._state[policy.scope or consumer][policy.name]
            if policy.kind == GCRA:
                interval, burst = policy.interval, policy.burst
                ahead = max(0.0, slot[0] - now)
                remaining = max(0, int((burst * interval - ahead + _EPSILON) // interval))
                if remaining >= burst:
                    remaining, wait = burst, 0.0
                else:
                    wait = ahead - (burst - remaining - 1) * interval
            else:
                ident, ends = self._calendar.period(policy.period, now)
                used = slot[1] if slot[0] == ident else 0
                remaining, wait = max(0, policy.limit - int(used)), ends - now
            if best_r < 0 or remaining < best_r or (remaining == best_r and wait > best_wait):
                best_name, best_r, best_wait = policy.name, remaining, wait
        return limit_field(best_name, best_r, best_wait)

    def forget_all_but(self, subjects: Collection[str]) -> None:
        """After a reload: drop the counters of consumers and routes that are gone."""
        for subject in [s for s in self._state if s not in subjects]:
            del self._state[subject]
