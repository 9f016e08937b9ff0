"""Both stores count the same way: GCRA for a rate with a burst, UTC calendar quotas, and a
refused request charges nothing.

Each scenario runs on the local store and on a real redis-server. The Redis store runs the
production script with one line changed: its clock comes from the test instead of `TIME`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
import redis.asyncio

from apigw.config.plans import Rate
from apigw.ratelimit.local import _MAX_FIELDS, LocalStore
from apigw.ratelimit.policies import (
    GCRA,
    QUOTA,
    QUOTA_EXCEEDED,
    Limits,
    Policy,
    month_bounds,
    rate_policy,
)
from apigw.ratelimit.redis_store import SCRIPT, RedisStore
from apigw.shared.errors import ProblemError
from tests.system.redis_server import RedisServer

CLOCK_LINE = "local t = redis.call('TIME')"
Admit = Callable[[str, Limits], tuple[str, str]]


class Clock:
    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()


class ClockedRedis:
    """The Redis store, its clock set by the test: `TIME` becomes the last two arguments."""

    def __init__(self, url: str, clock: Clock) -> None:
        assert SCRIPT.count(CLOCK_LINE) == 1
        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(
            SCRIPT.replace(CLOCK_LINE, "local t = {ARGV[#ARGV - 1], ARGV[#ARGV]}")
        )
        # Only its key and argument layout is used; no call goes through this client.
        self.layout = RedisStore(redis.asyncio.Redis.from_url(url), "test")
        self.clock = clock

    def admit(self, consumer: str, limits: Limits) -> tuple[str, str]:
        keys, args = self.layout.keys_and_args(consumer, limits)
        seconds = math.floor(self.clock.now)
        micros = round((self.clock.now - seconds) * 1_000_000)
        reply = self.script(keys=keys, args=[*args, seconds, micros])
        return RedisStore.decide(reply, limits, self.clock.now)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC))


@pytest.fixture
def clocked_redis(redis_server: RedisServer, clock: Clock) -> Iterator[ClockedRedis]:
    store = ClockedRedis(redis_server.url, clock)
    store.client.flushall()
    try:
        yield store
    finally:
        store.client.close()


@pytest.fixture(params=["local", "redis"])
def admit(request: pytest.FixtureRequest, clock: Clock) -> Admit:
    if request.param == "local":
        return LocalStore(clock).admit
    store: ClockedRedis = request.getfixturevalue("clocked_redis")
    return store.admit


def rate(limit: int, per: float, burst: int) -> Limits:
    return Limits((rate_policy(Rate(limit=limit, per=per, burst=burst, name="burst")),))


def quota(limit: int, period: str, name: str = "q") -> Policy:
    return Policy(name, QUOTA, limit=limit, period=period)


def refused(admit: Admit, consumer: str, limits: Limits) -> ProblemError:
    with pytest.raises(ProblemError) as info:
        admit(consumer, limits)
    error = info.value
    assert error.status == 429
    assert error.problem_type == QUOTA_EXCEEDED
    return error


def test_a_burst_then_the_sustained_rate(admit: Admit, clock: Clock) -> None:
    limits = rate(10, 1.0, 10)
    for left in range(9, -1, -1):
        policy_field, field = admit("alice", limits)
        assert policy_field == '"burst";q=10;w=1'
        # One more request is possible 0.1 s later, whatever is left now.
        assert field == f'"burst";r={left};t=1'
    error = refused(admit, "alice", limits)
    assert error.extra == {"violated-policies": ["burst"]}
    assert error.headers["Retry-After"] == "1"
    assert error.headers["RateLimit"] == '"burst";r=0;t=1'
    clock.now += 0.1
    assert admit("alice", limits)[1] == '"burst";r=0;t=1'
    refused(admit, "alice", limits)


def test_local_field_texts_stay_exact_past_the_bound_of_their_cache(clock: Clock) -> None:
    # The local store keeps the RateLimit texts it formatted, at most _MAX_FIELDS of them:
    # a quota counting down makes a new one per request, and each is still exact.
    store = LocalStore(clock)
    limits = Limits((quota(10_000, "day"),))
    for used in range(_MAX_FIELDS + 100):
        assert store.admit("alice", limits)[1] == f'"q";r={10_000 - used - 1};t=43200'
    assert len(store._fields) <= _MAX_FIELDS


def test_admitted_over_five_seconds_is_burst_plus_rate_exactly(admit: Admit, clock: Clock) -> None:
    """1000 requests a second for 5 s against 10/s with a burst of 10."""
    limits = rate(10, 1.0, 10)
    start = clock.now
    admitted = 0
    for i in range(5000):
        clock.now = start + i / 1000
        try:
            admit("alice", limits)
        except ProblemError:
            continue
        admitted += 1
    # The first request at 0 s, the last at 4.999 s: 10 at once, then one every 0.1 s.
    assert admitted == 10 + math.floor(10 * 4.999)


def test_a_refused_request_charges_no_policy(admit: Admit, clock: Clock) -> None:
    """Refused by the rate, the daily quota is not charged; refused by the quota, the rate is
    not charged."""
    burst = rate_policy(Rate(2, 60.0, 2, "burst"))
    limits = Limits((burst, quota(5, "day", "daily")))
    admit("alice", limits)
    admit("alice", limits)
    for _ in range(3):
        assert refused(admit, "alice", limits).extra == {"violated-policies": ["burst"]}
    clock.now += 60  # two more requests' worth of rate
    admit("alice", limits)
    assert admit("alice", limits)[1] == '"burst";r=0;t=30'
    clock.now += 60
    admit("alice", limits)  # the fifth: the daily quota is spent, not before
    error = refused(admit, "alice", limits)
    assert error.extra == {"violated-policies": ["daily"]}
    assert error.headers["RateLimit"] == '"daily";r=0;t=43080'
    assert error.headers["RateLimit-Policy"] == '"burst";q=2;w=60, "daily";q=5;w=86400'
    # The refusals by the quota took nothing from the rate: one request of burst is left.
    for _ in range(3):
        refused(admit, "alice", limits)
    assert admit("alice", Limits((burst,)))[1] == '"burst";r=0;t=30'


def test_a_daily_quota_rolls_over_at_utc_midnight(admit: Admit, clock: Clock) -> None:
    limits = Limits((quota(2, "day", "daily"),))
    clock.set(datetime(2026, 3, 10, 23, 59, 59, 500000, tzinfo=UTC))
    assert admit("alice", limits)[1] == '"daily";r=1;t=1'
    assert admit("alice", limits)[1] == '"daily";r=0;t=1'
    error = refused(admit, "alice", limits)
    assert error.headers["Retry-After"] == "1"
    clock.set(datetime(2026, 3, 11, 0, 0, 0, tzinfo=UTC))
    assert admit("alice", limits)[1] == '"daily";r=1;t=86400'


@pytest.mark.parametrize(
    ("last_second", "next_month", "days_before", "days_after"),
    [
        (datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC), 31, 28),
        (datetime(2028, 2, 29, 23, 59, 59, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC), 29, 31),
        (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC), 31, 31),
    ],
    ids=["january-february", "leap-february", "new-year"],
)
def test_a_monthly_quota_rolls_over_at_the_calendar_month(
    admit: Admit,
    clock: Clock,
    last_second: datetime,
    next_month: datetime,
    days_before: int,
    days_after: int,
) -> None:
    limits = Limits((quota(1, "month", "monthly"),))
    clock.set(last_second)
    policy_field, field = admit("alice", limits)
    assert policy_field == f'"monthly";q=1;w={days_before * 86400}'
    assert field == '"monthly";r=0;t=1'
    refused(admit, "alice", limits)
    clock.set(next_month)
    policy_field, field = admit("alice", limits)
    assert policy_field == f'"monthly";q=1;w={days_after * 86400}'
    assert field == f'"monthly";r=0;t={days_after * 86400}'


@pytest.mark.parametrize("period", ["minute", "hour"])
def test_minute_and_hour_quotas_roll_over_on_the_clock(
    admit: Admit, clock: Clock, period: str
) -> None:
    limits = Limits((quota(1, period),))
    clock.set(datetime(2026, 3, 10, 12, 59, 59, 900000, tzinfo=UTC))
    admit("alice", limits)
    refused(admit, "alice", limits)
    clock.set(datetime(2026, 3, 10, 13, 0, 0, tzinfo=UTC))
    admit("alice", limits)


def test_counters_of_different_consumers_never_mix(admit: Admit) -> None:
    limits = Limits((rate_policy(Rate(1, 60.0, 3, "burst")), quota(100, "day")))
    for _ in range(3):
        admit("alice", limits)
    refused(admit, "alice", limits)
    assert admit("bob", limits)[1] == '"burst";r=2;t=60'


def test_a_route_rate_is_one_counter_for_every_consumer(admit: Admit) -> None:
    shared = Policy("route", GCRA, interval=60.0, burst=2, scope="/orders")
    limits = Limits((shared,))
    admit("alice", limits)
    admit("bob", limits)
    assert refused(admit, "carol", limits).extra == {"violated-policies": ["route"]}


def test_the_script_finds_every_month_end_as_python_does(
    clocked_redis: ClockedRedis, clock: Clock
) -> None:
    """Calendar months in Lua (days_from_civil) against Python's datetime, 1970 to 2200."""
    store = clocked_redis
    limits = Limits((quota(10**9, "month", "m"),))
    for year in range(1970, 2200, 7):
        for month in (1, 2, 3, 6, 12):
            clock.set(datetime(year, month, 17, 5, 6, 7, tzinfo=UTC))
            _, field = store.admit(f"c{year}-{month}", limits)
            _, end, _ = month_bounds(clock.now)
            assert field.endswith(f";t={math.ceil(end - clock.now)}"), (year, month, field)
