"""TokenBucket and AdaptiveLimiter on a fake clock: every wait and every AIMD step is exact."""

from __future__ import annotations

import asyncio

import pytest

from worker.batch.ratelimit import AdaptiveLimiter, TokenBucket


class FakeClock:
    """``clock()`` reads it, ``await sleep(s)`` advances it (and records what was slept)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture()
def clock() -> FakeClock:
    return FakeClock()


def bucket(clock: FakeClock, rate: float | None, burst: int = 1) -> TokenBucket:
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep)


# --- TokenBucket ---------------------------------------------------------------------------

async def test_unlimited_never_waits(clock: FakeClock) -> None:
    b = bucket(clock, None)
    assert [await b.acquire() for _ in range(1000)] == [0.0] * 1000
    assert clock.slept == []


async def test_sequential_calls_are_spaced_by_one_over_rate(clock: FakeClock) -> None:
    b = bucket(clock, 10.0)
    waits = [await b.acquire() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.1, 0.1, 0.1])
    assert clock.now == pytest.approx(100.3)


async def test_burst_is_free_then_rate_applies(clock: FakeClock) -> None:
    b = bucket(clock, 4.0, burst=3)
    assert [await b.acquire() for _ in range(5)] == pytest.approx([0, 0, 0, 0.25, 0.25])


def test_concurrent_reservations_queue_in_arrival_order(clock: FakeClock) -> None:
    """No time passes between reservations: each caller is told to wait one interval longer."""
    b = bucket(clock, 5.0)
    assert [b.reserve() for _ in range(4)] == pytest.approx([0.0, 0.2, 0.4, 0.6])


async def test_concurrent_acquires_on_the_event_loop() -> None:
    """The real clock and sleep: five callers at 50/s take about 80 ms in all, not 0."""
    b = TokenBucket(50.0, 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    waits = await asyncio.gather(*(b.acquire() for _ in range(5)))
    assert sorted(waits) == pytest.approx([0, 0.02, 0.04, 0.06, 0.08], abs=0.005)
    assert loop.time() - started >= 0.075


def test_idle_time_refills_only_up_to_burst(clock: FakeClock) -> None:
    b = bucket(clock, 10.0, burst=2)
    assert [b.reserve() for _ in range(2)] == [0.0, 0.0]
    clock.advance(60)
    assert [b.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.1])


def test_set_rate_keeps_tokens_earned_at_the_old_rate(clock: FakeClock) -> None:
    b = bucket(clock, 10.0)
    assert b.reserve() == 0.0
    clock.advance(0.05)         # half a token earned at 10/s
    b.set_rate(1.0)
    assert b.reserve() == pytest.approx(0.5)  # the other half at 1/s
    b.set_rate(None)
    assert b.reserve() == 0.0 and b.rate is None


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("inf"), 1), (float("nan"), 1), (1, 0)])
def test_bucket_rejects_bad_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


# --- AdaptiveLimiter: configured ceiling ----------------------------------------------------

def limiter(clock: FakeClock, rate: float | None, **kwargs: float) -> AdaptiveLimiter:
    return AdaptiveLimiter(rate, clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


def test_throttle_halves_once_per_cooldown_down_to_the_floor(clock: FakeClock) -> None:
    lim = limiter(clock, 100.0, floor=10.0)
    lim.on_throttle()
    assert lim.rate == 50.0
    lim.on_throttle()            # same overload, seen by another consumer: ignored
    clock.advance(0.5)
    lim.on_throttle()
    assert lim.rate == 50.0 and lim.throttles == 3
    steps = []
    for _ in range(4):
        clock.advance(1.0)
        lim.on_throttle()
        steps.append(lim.rate)
    assert steps == [25.0, 12.5, 10.0, 10.0]


def test_success_recovers_additively_up_to_the_ceiling(clock: FakeClock) -> None:
    lim = limiter(clock, 100.0)      # default step: 100 / 20 = 5 calls/s per second
    lim.on_throttle()
    assert lim.rate == 50.0
    lim.on_success()
    assert lim.rate == pytest.approx(50.0 + 5 / 50)
    for _ in range(100_000):
        lim.on_success()
    assert lim.rate == 100.0          # capped, never above the ceiling


def test_recovery_takes_about_step_per_second_of_successes(clock: FakeClock) -> None:
    """At rate r, a second of calls is r successes of step/r each: +step per second."""
    lim = limiter(clock, 1000.0, step=10.0)
    lim.on_throttle()
    rate_before = lim.rate
    assert rate_before == 500.0
    for _ in range(500):             # one second's worth of calls at ~500/s
        lim.on_success()
    assert lim.rate == pytest.approx(510.0, abs=0.1)


async def test_throttled_rate_paces_acquire(clock: FakeClock) -> None:
    lim = limiter(clock, 20.0)
    assert await lim.acquire() == 0.0
    assert await lim.acquire() == pytest.approx(0.05)
    lim.on_throttle()                 # 10/s from now on
    assert await lim.acquire() == pytest.approx(0.1)


def test_floor_never_exceeds_the_ceiling(clock: FakeClock) -> None:
    lim = limiter(clock, 0.5, floor=1.0)
    lim.on_throttle()
    assert lim.rate == 0.5


# --- AdaptiveLimiter: no configured rate ----------------------------------------------------

def test_unlimited_until_the_first_throttle_then_half_the_observed_rate(clock: FakeClock) -> None:
    lim = limiter(clock, None)
    assert lim.rate is None
    for _ in range(40):               # 40 successes in 2 s: 20/s sustained
        clock.advance(0.05)
        lim.on_success()
    assert lim.rate is None and lim.observed_rate() == pytest.approx(20.0)
    lim.on_throttle()
    assert lim.rate == pytest.approx(10.0)
    assert lim.step == pytest.approx(1.0)  # sized from the observed rate (20 / 20)


def test_observed_rate_uses_a_sliding_window(clock: FakeClock) -> None:
    lim = limiter(clock, None, window_s=5.0)
    for _ in range(100):              # 10/s for 10 s
        clock.advance(0.1)
        lim.on_success()
    assert lim.observed_rate() == pytest.approx(10.0, rel=0.03)
    clock.advance(3)                  # quiet for 3 s: only the last 2 s of calls remain
    assert lim.observed_rate() == pytest.approx(20 / 5.0, rel=0.06)


def test_throttle_without_any_success_starts_at_the_floor(clock: FakeClock) -> None:
    lim = limiter(clock, None, floor=4.0)
    lim.on_throttle()
    assert lim.rate == 4.0


def test_throttled_before_any_success_recovers_by_the_consumer_count_per_second(clock: FakeClock) -> None:
    lim = limiter(clock, None, floor=4.0, burst=64)
    lim.on_throttle()
    assert lim.rate == 4.0 and lim.step == 64.0
    for _ in range(5):               # five seconds of calls at the current rate
        assert lim.rate is not None
        for _ in range(int(lim.rate)):
            lim.on_success()
    assert lim.rate is not None and lim.rate > 200  # (calls counted at each second's opening rate); a step of 1: ~9


def test_unconfigured_recovery_has_no_ceiling(clock: FakeClock) -> None:
    lim = limiter(clock, None, floor=2.0, step=4.0)
    lim.on_throttle()
    assert lim.rate == 2.0 and lim.step == 4.0  # an explicit step is kept
    for _ in range(1000):
        lim.on_success()
    assert lim.rate is not None and lim.rate > 80


@pytest.mark.parametrize("kwargs", [{"decrease": 1.0}, {"decrease": 0.0}, {"floor": 0.0}])
def test_limiter_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AdaptiveLimiter(10.0, **kwargs)  # type: ignore[arg-type]
